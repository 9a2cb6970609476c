"""`portwatch broker config`: the rendered mosquitto.conf, who owns the files, what it prints.

The real broker reading these files as its own user, before and after a reload, is
hil_tests/test_broker_config.py.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from controller import broker_auth, registry
from controller.storage import open_store
from protocols.envelope import MAX_WIRE_BYTES
from tools import broker, broker_setup
from tools.broker_setup import Owner, OwnershipError, decide_owner
from tools.cli import app
from tools.tls import BrokerTls

USERS = {"mosquitto": (105, 108), "alice": (1000, 1000), "root": (0, 0)}


def _settings(conf: str) -> dict[str, list[str]]:
    """{option: [value, ...]} of a mosquitto.conf (an option may repeat, as log_type does)."""
    out: dict[str, list[str]] = {}
    for line in conf.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value)
    return out


def _site_conf(**over: Any) -> str:
    args: dict[str, Any] = {
        "port": 1883, "bind": "0.0.0.0", "user": "mosquitto",
        "password_file": Path("/etc/pw/passwd"), "acl_file": Path("/etc/pw/acl"),
        "data_dir": Path("/etc/pw/data"),
        "tls": BrokerTls(Path("/etc/pw/tls/ca.pem"), Path("/etc/pw/tls/server.pem"),
                         Path("/etc/pw/tls/server.key"))}
    return broker.render_site_config(**{**args, **over})


def test_site_config_is_complete_and_never_runs_the_broker_as_root() -> None:
    s = _settings(_site_conf(port=8883, bind="10.20.0.2"))
    assert s["listener"] == ["8883 10.20.0.2"]
    assert s["user"] == ["mosquitto"]
    assert s["allow_anonymous"] == ["false"]
    assert s["password_file"] == ["/etc/pw/passwd"] and s["acl_file"] == ["/etc/pw/acl"]
    assert s["persistence"] == ["true"] and s["persistence_location"] == ["/etc/pw/data/"]
    assert s["pid_file"] == ["/etc/pw/data/mosquitto.pid"]  # in the broker user's directory
    assert int(s["max_queued_messages"][0]) >= 1_000_000  # not Mosquitto's silent 1,000
    assert s["set_tcp_nodelay"] == ["true"]
    assert s["log_dest"] == ["stderr"]
    assert all(len(v) == 1 for k, v in s.items() if k != "log_type"), "duplicate option"


def test_site_config_ties_client_ids_to_logins_limits_packets_and_speaks_only_tls() -> None:
    conf = _site_conf(port=8883, bind="10.20.0.2")
    s = _settings(conf)
    assert s["use_username_as_clientid"] == ["true"]  # no login can take another's id
    # the largest envelope passes, a bigger packet is refused at the broker
    assert MAX_WIRE_BYTES < int(s["max_packet_size"][0]) <= MAX_WIRE_BYTES + 1024
    # a whole site's backlog fits (2,000 agents' full 256 KiB outboxes), a flood cannot
    # take the server's memory
    assert 2000 * 256 * 1024 <= int(s["max_queued_bytes"][0]) <= 1 << 30
    # one listener, and it is TLS: no clear MQTT port at all
    lines = conf.splitlines()
    at = lines.index("listener 8883 10.20.0.2")
    assert s["listener"] == ["8883 10.20.0.2"]
    assert lines[at + 1:at + 5] == ["cafile /etc/pw/tls/ca.pem",
                                    "certfile /etc/pw/tls/server.pem",
                                    "keyfile /etc/pw/tls/server.key", "tls_version tlsv1.2"]


def test_child_broker_with_logins_ties_client_ids_to_them() -> None:
    anonymous = _settings(broker.render_config(port=1, data_dir=Path("/d")))
    assert "use_username_as_clientid" not in anonymous  # anonymous clients have no login
    secure = _settings(broker.render_config(port=1, data_dir=Path("/d"),
                                            password_file=Path("/p"), acl_file=Path("/a")))
    assert secure["use_username_as_clientid"] == ["true"]


def test_site_and_child_broker_configs_share_one_source_of_delivery_settings() -> None:
    child = broker.render_config(port=1, data_dir=Path("/d")).splitlines()
    site = _site_conf().splitlines()
    for line in broker.delivery_settings():
        assert line in child and line in site


@pytest.mark.parametrize(("over", "message"), [
    ({"password_file": Path("passwd")}, "absolute"),
    ({"data_dir": Path("rel/data")}, "absolute"),
    ({"user": "mos quitto"}, "cannot go into"),
    ({"bind": "0.0.0.0\nuser root"}, "cannot go into"),
    ({"acl_file": Path("/etc/pw/acl\nuser root")}, "cannot go into"),
    ({"tls": BrokerTls(Path("ca.pem"), Path("/s.pem"), Path("/s.key"))}, "absolute"),
    ({"port": 70000}, "not a TCP port"),
])
def test_site_config_refuses_what_would_break_or_change_its_meaning(
        over: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _site_conf(**over)


# -- who owns the files ----------------------------------------------------------------

def _decide(**kw: Any) -> Owner:
    args: dict[str, Any] = {"euid": 0, "current_user": "root", "requested": None,
                            "lookup": USERS.get}
    return decide_owner(**{**args, **kw})


def test_as_root_the_files_go_to_the_mosquitto_user() -> None:
    assert _decide() == Owner("mosquitto", (105, 108))
    # whoever wrote the old files: root gives the new ones to the broker's user
    assert _decide(existing_owner="alice") == Owner("mosquitto", (105, 108))


def test_as_root_broker_user_names_another_owner() -> None:
    assert _decide(requested="alice") == Owner("alice", (1000, 1000))


def test_as_root_without_a_mosquitto_user_it_refuses_and_says_what_to_do() -> None:
    with pytest.raises(OwnershipError, match=r"no user 'mosquitto'.*--broker-user"):
        _decide(lookup={"root": (0, 0)}.get)
    with pytest.raises(OwnershipError, match="--broker-user ghost: there is no such user"):
        _decide(requested="ghost")


def test_not_root_the_files_stay_the_callers_and_the_broker_runs_as_the_caller() -> None:
    owner = _decide(euid=1000, current_user="alice")
    assert owner == Owner("alice", None)  # no chown: the config says `user alice`
    assert _decide(euid=1000, current_user="alice", requested="alice") == owner
    assert _decide(euid=1000, current_user="alice", existing_owner="alice") == owner


def test_not_root_it_refuses_to_give_files_away_or_to_take_the_brokers_back() -> None:
    with pytest.raises(OwnershipError, match="only root can give the files to 'mosquitto'"):
        _decide(euid=1000, current_user="alice", requested="mosquitto")
    # a rewrite by alice would leave mosquitto unable to read passwd at the next reload
    with pytest.raises(OwnershipError, match=r"belongs to 'mosquitto'.*run this command as root"):
        _decide(euid=1000, current_user="alice", existing_owner="mosquitto")


def _stats(modes: dict[str, tuple[int, int, int]]) -> Any:
    return lambda p: SimpleNamespace(st_mode=modes[str(p)][0], st_uid=modes[str(p)][1],
                                     st_gid=modes[str(p)][2])


def test_blocked_at_names_the_first_directory_the_broker_user_cannot_enter() -> None:
    tree = {"/": (0o755, 0, 0), "/tmp": (0o1777, 0, 0), "/tmp/pytest-of-root": (0o700, 0, 0),
            "/tmp/pytest-of-root/b": (0o755, 0, 0)}
    target = Path("/tmp/pytest-of-root/b")
    assert broker_setup.blocked_at(target, 105, [108], _stats(tree)) == Path(
        "/tmp/pytest-of-root")
    assert broker_setup.blocked_at(target, 0, [0], _stats(tree)) is None
    tree["/tmp/pytest-of-root"] = (0o710, 0, 108)  # its group may pass
    assert broker_setup.blocked_at(target, 105, [108], _stats(tree)) is None
    tree["/tmp/pytest-of-root"] = (0o700, 105, 0)  # it owns it
    assert broker_setup.blocked_at(target, 105, [108], _stats(tree)) is None


# -- what it prints -----------------------------------------------------------------------

def _written(owner: Owner, blocked: Path | None = None) -> broker_setup.Written:
    d = Path("/etc/mosquitto/portwatch")
    return broker_setup.Written(config=d / "mosquitto.conf", passwd=d / "passwd", acl=d / "acl",
                                data_dir=d / "data", pid_file=d / "data/mosquitto.pid",
                                listener="0.0.0.0:1883", logins=3, owner=owner, blocked=blocked)


def test_report_gives_whole_commands_on_their_own_lines_within_80_columns() -> None:
    lines = broker_setup.report(_written(Owner("mosquitto", (105, 108))))
    assert "  mosquitto -c /etc/mosquitto/portwatch/mosquitto.conf" in lines
    assert "  kill -HUP $(cat /etc/mosquitto/portwatch/data/mosquitto.pid)" in lines
    assert "  systemctl reload mosquitto" in lines
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    assert any("belong to mosquitto" in line for line in lines)


def test_report_not_as_root_says_who_must_run_the_broker() -> None:
    text = "\n".join(broker_setup.report(_written(Owner("alice", None))))
    assert "belong to alice: run the broker as alice" in text
    assert "run this command as root" in text


def test_report_warns_when_the_broker_user_cannot_reach_the_directory() -> None:
    lines = broker_setup.report(_written(Owner("mosquitto", (105, 108)),
                                         blocked=Path("/root")))
    assert any(line.startswith("warning: mosquitto cannot enter /root") for line in lines)
    assert "  chmod o+x /root" in lines


# -- the files, as written ----------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_configure_writes_every_file_with_its_mode(tmp_path: Path) -> None:
    store = open_store(tmp_path / "pw.db", create=True)
    registry.provision(store, device_id="wb-1", site="s", kind="weighbridge")
    out = tmp_path / "etc" / "broker"
    w = broker_setup.configure(store, site="s", out_dir=out, port=18830, bind="127.0.0.1",
                               broker_user=None if os.geteuid() else "root")
    assert (w.config, w.passwd, w.acl, w.data_dir) == (
        out / "mosquitto.conf", out / "passwd", out / "acl", out / "data")
    assert (_mode(w.passwd), _mode(w.acl), _mode(w.config), _mode(w.data_dir)) == (
        0o600, 0o640, 0o644, 0o700)
    assert _mode(out) == 0o755 and _mode(out.parent) == 0o755  # created passable
    s = _settings(w.config.read_text())
    assert s["password_file"] == [str(w.passwd)] and s["listener"] == ["18830 127.0.0.1"]
    assert s["user"] == [w.owner.name]
    assert w.logins == 2  # wb-1 and the controller
    assert w.tls is not None and s["certfile"] == [str(out / "tls" / "server.pem")]
    assert (_mode(w.tls.key), _mode(w.tls.cert), _mode(w.tls.ca)) == (0o600, 0o644, 0o644)
    ca_dir = tmp_path / "pw.db.ca"  # the site CA, next to the store, its key private
    assert (_mode(ca_dir), _mode(ca_dir / "ca.key")) == (0o700, 0o600)
    assert w.tls.ca.read_bytes() == (ca_dir / "ca.pem").read_bytes()


def test_configure_not_as_root_leaves_the_files_to_the_caller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setattr(os, "geteuid", lambda: 4321)  # root or not, take the non-root path
    store = open_store(tmp_path / "pw.db", create=True)
    w = broker_setup.configure(store, site="s", out_dir=tmp_path / "b")
    assert w.owner == Owner(me, None) and w.blocked is None
    assert _settings(w.config.read_text())["user"] == [me]
    assert {p.stat().st_uid for p in (w.passwd, w.acl, w.data_dir)} == {os.getuid()}
    assert f"belong to {me}: run the broker as {me}" in "\n".join(broker_setup.report(w))
    if os.getuid() == 0:  # the broker's files from an earlier run as root: not to be taken
        os.chown(w.passwd, 54321, 54321)
        with pytest.raises(OwnershipError, match="run this command as root"):
            broker_setup.configure(store, site="s", out_dir=tmp_path / "b")
        assert w.passwd.stat().st_uid == 54321


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_as_root_configure_gives_the_files_to_the_broker_user_on_every_rewrite(
        tmp_path: Path) -> None:
    # the owner is chowned before the rename: a rewrite never leaves root's files behind
    store = open_store(tmp_path / "pw.db", create=True)
    out = tmp_path / "b"
    uid, gid = 54321, 54322  # any ids: the test needs no such user
    for _ in range(2):
        passwd, acl = broker_auth.write_files(store, site="s", out_dir=out, owner=(uid, gid))
        for path in (passwd, acl):
            assert (path.stat().st_uid, path.stat().st_gid) == (uid, gid)
    assert sorted(p.name for p in out.iterdir()) == ["acl", "passwd"]  # no temp file left


def test_cli_prints_commands_unwrapped_however_narrow_the_terminal(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    registry.provision(open_store(db, create=True), device_id="wb-1", site="s",
                       kind="weighbridge")
    out = tmp_path / ("a-rather-long-directory-name-for-the-broker" * 2)
    args = ["broker", "config", "--out", str(out), "--db", str(db), "--site", "s"]
    if os.geteuid() == 0:
        args += ["--broker-user", "root"]  # no chown to a user this machine may lack
    r = CliRunner().invoke(app, args, env={"COLUMNS": "40"})
    assert r.exit_code == 0, r.output
    assert f"  mosquitto -c {out}/mosquitto.conf" in r.output.splitlines()
    assert f"  kill -HUP $(cat {out}/data/mosquitto.pid)" in r.output.splitlines()


def test_cli_broker_user_that_does_not_exist_is_refused_before_writing(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(db, create=True)
    args = ["broker", "config", "--out", str(tmp_path / "b"), "--db", str(db),
            "--broker-user", "no-such-user-here"]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 1
    assert "no-such-user-here" in r.output
    assert not (tmp_path / "b").exists()
