"""``portwatch broker config``: a site's whole Mosquitto configuration, owned so that it works.

One directory holds everything the broker needs::

    mosquitto.conf   listener, no anonymous logins, the files below, persistence, the
                     delivery settings (tools/broker.py); root's (or yours), mode 0644
    passwd           one login per device in service + the controller's; mode 0600
    acl              each login's topics; mode 0640
    tls/             ca.pem (the site CA), server.pem and server.key (0600): the TLS
                     listener's certificate, signed by the site CA (tools/tls.py)
    data/            persistence and the pid file; mode 0700

Mosquitto started as root (as Debian's service starts it) switches to the user named by
``user`` in its config (``mosquitto``) right after reading the config, before it opens
the password file and ACL, and reads them again as that user on SIGHUP. Root-only files
therefore lock every client out, at start and after a reload. So, run as root, this
gives ``passwd``, ``acl`` and ``data/`` to that user, and every rewrite gives the new file
its owner before the rename. Run as anyone else, it cannot give files away: they stay the
caller's, the config names the caller as ``user``, and the output says so.

:func:`decide_owner` and :func:`report` are pure; :func:`configure` does the writing.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from controller import broker_auth
from controller.storage import Store
from tools import tls as site_tls
from tools.broker import PID_FILE, render_site_config

DEFAULT_BROKER_USER = "mosquitto"  # Mosquitto's own default; Debian's package creates it
CONFIG_FILE = "mosquitto.conf"
DATA_DIR = "data"
TLS_DIR = "tls"
CONFIG_MODE = 0o644  # re-read on SIGHUP by the broker's user; holds no secret
DATA_MODE = 0o700
DIR_MODE = 0o755  # for directories this creates: the broker's user must pass through


class OwnershipError(ValueError):
    """The files cannot be given to a user the broker could read them as."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who the broker reads its files as.

    ``name`` goes into the config as ``user``; ``ids`` (uid, gid) is what the files are
    chowned to, or None when they stay the writer's (who is then ``name``).
    """

    name: str
    ids: tuple[int, int] | None


def decide_owner(*, euid: int, current_user: str, requested: str | None,
                 lookup: Callable[[str], tuple[int, int] | None],
                 existing_owner: str | None = None) -> Owner:
    """Which user the broker's files must belong to, and whether this run can give them.

    ``lookup(name)`` is that user's (uid, primary gid), or None when there is no such user;
    ``existing_owner`` is the owner of the ``passwd`` already there, if any.
    """
    if euid == 0:
        name = requested or DEFAULT_BROKER_USER
        ids = lookup(name)
        if ids is None:
            if requested:
                raise OwnershipError(f"--broker-user {name}: there is no such user here")
            raise OwnershipError(
                f"there is no user {name!r} here: Mosquitto started as root switches to "
                f"it (or to 'nobody' when it is missing) and could not read root's files. "
                "Install Debian's mosquitto package (it creates the user), or pass "
                "--broker-user with the user your broker runs as")
        return Owner(name, ids)
    name = requested or current_user
    if name != current_user:
        raise OwnershipError(
            f"only root can give the files to {name!r}: run this command as root, or "
            f"leave out --broker-user to keep them yours ({current_user}) and run the "
            f"broker as {current_user}")
    if existing_owner is not None and existing_owner != current_user:
        raise OwnershipError(
            f"the passwd already there belongs to {existing_owner!r}, the user the broker "
            f"reads it as; written by {current_user} it would lock every client out at the "
            "next reload: run this command as root")
    return Owner(name, None)


def blocked_at(path: Path, uid: int, gids: Collection[int],
               stat_of: Callable[[Path], os.stat_result] = os.stat) -> Path | None:
    """The first directory from / down to ``path`` that ``uid`` may not enter, or None."""
    if uid == 0:
        return None
    for directory in (*reversed(path.parents), path):
        st = stat_of(directory)
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


@dataclass(frozen=True, slots=True)
class Written:
    """What :func:`configure` wrote, for :func:`report`."""

    config: Path
    passwd: Path
    acl: Path
    data_dir: Path
    pid_file: Path
    listener: str
    logins: int
    owner: Owner
    blocked: Path | None  # a directory the broker's user cannot pass: it will not start
    skipped: tuple[str, ...] = ()  # devices left without a login, and why
    tls: site_tls.BrokerTls | None = None
    tls_hosts: tuple[str, ...] = ()
    new_cert: bool = False  # issued by this run: the broker uses it after its next reload


def report(w: Written) -> list[str]:
    """The lines to print: what was written, who must read it, how to start and reload.

    Plain lines: each command is alone on its line, whole, to copy as it stands.
    """
    owner = w.owner.name
    lines = [
        f"wrote {w.config}",
        f"  listener      {w.listener} (TLS only; no anonymous logins; client id = login)",
        *([f"  certificate   {w.tls.cert} for {', '.join(w.tls_hosts)}"
           f"{' (new: reload the broker)' if w.new_cert else ''}",
           f"  site CA       {w.tls.ca} (agents and the controller pin it)"]
          if w.tls is not None else []),
        f"  password_file {w.passwd} ({w.logins} logins)",
        f"  acl_file      {w.acl}",
        f"  persistence   {w.data_dir}/",
    ]
    if w.owner.ids is not None:
        lines += [f"passwd, acl and data/ belong to {owner}: Mosquitto, started as root,",
                  f"switches to {owner} (`user {owner}`) before it reads them, at start",
                  "and on every reload."]
    else:
        lines += [f"passwd, acl and data/ belong to {owner}: run the broker as {owner}",
                  f"(started as root, it switches to {owner}: `user {owner}`). To run it",
                  f"as {DEFAULT_BROKER_USER}, run this command as root instead."]
    lines += [f"warning: {why}" for why in w.skipped]
    if w.blocked is not None:
        lines += [f"warning: {owner} cannot enter {w.blocked}, so the broker cannot read",
                  "its files: choose a directory it can reach (/etc/mosquitto/portwatch),",
                  "or let it through:",
                  f"  chmod o+x {w.blocked}"]
    lines += [
        "start the broker with this config:",
        f"  mosquitto -c {w.config}",
        "after adding or removing devices, run this command again, then reload it:",
        f"  kill -HUP $(cat {w.pid_file})",
        "or, when Debian's mosquitto service runs this config:",
        "  systemctl reload mosquitto",
        f"portwatch controller logs in as {broker_auth.CONTROLLER_USER} (password in the store).",
    ]
    return lines


def _user_ids(name: str) -> tuple[int, int] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, each passable by others whatever the umask."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        directory.chmod(DIR_MODE)


def configure(store: Store, *, site: str, out_dir: Path, port: int = site_tls.TLS_PORT,
              bind: str = "0.0.0.0", broker_user: str | None = None,
              tls_hosts: tuple[str, ...] = site_tls.DEMO_HOSTS) -> Written:
    """Write mosquitto.conf, passwd, acl and data/ into ``out_dir`` (see the module's doc).

    Raises ValueError (OwnershipError among them) before writing anything it cannot
    write right.
    """
    out_dir = out_dir.absolute()
    passwd_path = out_dir / broker_auth.PASSWORD_FILE
    existing = passwd_path.stat().st_uid if passwd_path.exists() else None
    owner = decide_owner(euid=os.geteuid(), current_user=_user_name(os.getuid()),
                         requested=broker_user, lookup=_user_ids,
                         existing_owner=None if existing is None else _user_name(existing))
    data_dir = out_dir / DATA_DIR
    tls_dir = out_dir / TLS_DIR
    planned = site_tls.BrokerTls(tls_dir / site_tls.CA_CERT, tls_dir / site_tls.SERVER_CERT,
                                 tls_dir / site_tls.SERVER_KEY)
    site_tls.check_hosts(tls_hosts)
    config_text = render_site_config(
        port=port, bind=bind, user=owner.name, password_file=passwd_path,
        acl_file=out_dir / broker_auth.ACL_FILE, data_dir=data_dir, tls=planned)
    _make_dirs(out_dir)
    broker_tls, new_cert = site_tls.broker_tls(site_tls.ca_dir_for(store.path), tls_dir,
                                               tls_hosts, site=site, owner=owner.ids)
    skipped: list[str] = []
    passwd, acl = broker_auth.write_files(store, site=site, out_dir=out_dir, owner=owner.ids,
                                          skipped=skipped)
    data_dir.mkdir(exist_ok=True)
    data_dir.chmod(DATA_MODE)
    if owner.ids is not None:
        # what an earlier broker left there (persistence, pid file) must stay its to read
        for path in (data_dir, *data_dir.iterdir()):
            os.chown(path, *owner.ids, follow_symlinks=False)
    config = out_dir / CONFIG_FILE
    broker_auth.write_atomically(config, config_text, CONFIG_MODE)
    blocked = None
    if owner.ids is not None:
        uid, gid = owner.ids
        blocked = blocked_at(out_dir, uid, os.getgrouplist(owner.name, gid))
    return Written(config=config, passwd=passwd, acl=acl, data_dir=data_dir,
                   pid_file=data_dir / PID_FILE, listener=f"{bind}:{port}",
                   logins=len(passwd.read_text().splitlines()), owner=owner, blocked=blocked,
                   skipped=tuple(skipped), tls=broker_tls, tls_hosts=tls_hosts,
                   new_cert=new_cert)
