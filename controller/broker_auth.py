"""Mosquitto's password file and ACL, generated from the device registry.

Each device logs in to the broker as its device id and may write only its own
uplink channels and read only its own downlink channels (PROTOCOL.md, Topics)::

    pw/v1/<site>/<device_id>/{evt,tele,state,cmdack}    write (state: its birth and will)
    pw/v1/<site>/<device_id>/{ack,cmd}                   read

The controller has its own account (created on first use, kept in ``broker_accounts``)
that reads every device's uplink and writes every device's downlink at its site. So a
stolen device login can speak only for that device, whose messages the controller
still checks against that device's HMAC key.

Mosquitto reads both files at start and again on SIGHUP, as the user it runs as: started
as root it switches to its ``user`` (``mosquitto``) first, so the files must belong to that
user (``owner``; tools/broker_setup.py decides it). They are written by rename, the new file
given its owner before the rename, so a reload never sees half a file nor one it cannot read.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from controller.broker_names import CONTROLLER_USER as CONTROLLER_USER
from controller.broker_names import refusal
from controller.gateways import accounts as gateways
from controller.registry import mosquitto_hash
from controller.storage import Store, now_ms
from controller.storage import broker_accounts as rows
from protocols import topics

log = logging.getLogger(__name__)
PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
PASSWORD_MODE = 0o600
# not 0644: Mosquitto (2.0.16 on) warns that it will refuse a world-readable acl_file
ACL_MODE = 0o640


@dataclass(frozen=True, slots=True)
class Account:
    """One broker login: its ``$7$`` password hash and its ACL rules (``topic read ...``)."""

    user: str
    password_hash: str
    rules: tuple[str, ...]


def device_rules(site: str, device_id: str) -> tuple[str, ...]:
    """A device writes its own uplink and reads its own downlink, nothing else."""
    return (*(f"topic write {topics.topic(site, device_id, c)}" for c in topics.UP_CHANNELS),
            *(f"topic read {topics.topic(site, device_id, c)}" for c in topics.DOWN_CHANNELS))


def controller_rules(site: str) -> tuple[str, ...]:
    """The controller reads every device's uplink and writes every device's downlink."""
    return (*(f"topic read {topics.uplink_filter(site, c)}" for c in topics.UP_CHANNELS),
            *(f"topic write {topics.uplink_filter(site, c)}" for c in topics.DOWN_CHANNELS),
            # the broker's own counters (dropped messages: docs/ARCHITECTURE.md, Pitfalls)
            "topic read $SYS/broker/#")


def stored_controller_credentials(store: Store) -> tuple[str, str] | None:
    """The controller's broker (user, password), or None before ``controller_credentials``."""
    return rows.controller_login(store)


def controller_credentials(store: Store) -> tuple[str, str]:
    """The controller's broker (user, password), created and stored on first call."""
    stored = rows.controller_login(store)
    if stored is not None:
        return stored
    password = secrets.token_urlsafe(24)
    rows.add_controller_login(store, CONTROLLER_USER, password, mosquitto_hash(password),
                              now_ms())
    created = rows.controller_login(store)
    assert created is not None  # just inserted (or a concurrent caller did)
    return created


def accounts(store: Store, *, site: str, skipped: list[str] | None = None) -> list[Account]:
    """The controller's account (created if missing) and one per device in service.

    A decommissioned device has no login: the next generated files leave it out. A device
    whose id cannot be a login (a store from before the rule: ``broker_names``) is left out
    too, with why in ``skipped`` and the log, instead of failing the whole site's files:
    decommission it and provision it again under another id.
    """
    controller_credentials(store)
    out = [Account(user, password_hash, controller_rules(site))
           for user, password_hash in rows.controller_hashes(store)]
    out += [Account(*login) for login in gateways.accounts(store, site=site)]
    for row in rows.device_logins(store):
        device_id = row["device_id"]
        reason = refusal(device_id)
        if reason is None and any(a.user == device_id for a in out):
            reason = f"device id {device_id!r} is also a broker account's name"
        if reason is not None:
            why = (f"device {device_id!r} has no broker login: {reason}. Decommission it "
                   f"(portwatch device decommission {device_id} --reason ...) and provision "
                   "it again under another id")
            log.warning("%s", why)
            if skipped is not None:
                skipped.append(why)
            continue
        out.append(Account(device_id, row["mqtt_password_hash"],
                           device_rules(row["site"], device_id)))
    from controller.office_accounts import office_accounts  # it imports Account from here
    out.extend(office_accounts(store, site=site, taken={a.user for a in out}, skipped=skipped))
    return out


def render_password_file(accounts: Iterable[Account]) -> str:
    """Mosquitto's ``password_file``: one ``user:$7$...`` line per account."""
    lines = []
    for account in accounts:
        if ":" in account.user or not account.password_hash.startswith("$7$"):
            raise ValueError(f"account {account.user!r}: user names may not hold ':' and "
                             "hashes must be mosquitto's $7$ form (registry.mosquitto_hash)")
        lines.append(f"{account.user}:{account.password_hash}\n")
    return "".join(lines)


def render_acl_file(accounts: Iterable[Account]) -> str:
    """Mosquitto's ``acl_file``: a ``user`` block per account; nothing for anonymous."""
    blocks = ["# generated by `portwatch broker config` from the device registry: do not edit\n"]
    for account in accounts:
        if any(ch.isspace() for ch in account.user):
            raise ValueError(f"account {account.user!r}: user names may not hold spaces")
        blocks.append("\n".join((f"\nuser {account.user}", *account.rules)) + "\n")
    return "".join(blocks)


def write_atomically(path: Path, text: str, mode: int,
                     owner: tuple[int, int] | None = None) -> None:
    """Replace ``path`` by rename with a file of ``mode``, owned by ``owner`` (uid, gid) if given.

    The new file gets its mode and owner before the rename: a reader never sees the old
    file replaced by one it may not open.
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        if owner is not None:
            os.fchown(f.fileno(), *owner)
        os.fchmod(f.fileno(), mode)  # O_CREAT's mode went through the umask
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_files(store: Store, *, site: str, out_dir: Path,
                extra: Iterable[Account] = (),
                owner: tuple[int, int] | None = None,
                skipped: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``passwd`` (mode 0600) and ``acl`` (0640) into ``out_dir``; return their paths.

    Devices left out because their id cannot be a login are explained in ``skipped``.

    ``extra`` adds accounts that are not in the registry (a test harness's own login).
    ``owner`` (uid, gid) is the user the broker reads them as; by default the writer's.
    """
    every = [*accounts(store, site=site, skipped=skipped), *extra]
    out_dir.mkdir(parents=True, exist_ok=True)
    password_path, acl_path = out_dir / PASSWORD_FILE, out_dir / ACL_FILE
    write_atomically(password_path, render_password_file(every), PASSWORD_MODE, owner)
    write_atomically(acl_path, render_acl_file(every), ACL_MODE, owner)
    return password_path, acl_path
