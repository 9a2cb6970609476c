"""The `portwatch` CLI: commands work on a real store, and each is documented."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from controller import auth, registry
from controller.storage import open_store
from tools.cli import app

runner = CliRunner()
README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> list[tuple[str, Any]]:
    group: Any = typer.main.get_command(app)
    out: list[tuple[str, Any]] = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a sub-group (typer may bring its own click)
            out += [(f"{name} {sub}", c) for sub, c in cmd.commands.items()]
        else:
            out.append((name, cmd))
    assert len(out) >= 6
    return out


def test_cli_every_command_has_an_example_and_is_in_the_readme() -> None:
    readme = README.read_text()
    for name, cmd in _commands():
        assert "Example: portwatch" in (cmd.help or ""), f"{name} has no example in its help"
        assert f"portwatch {name}" in readme or name == "demo", f"README never shows {name}"


def test_cli_device_add_registers_and_writes_private_config(tmp_path: Path) -> None:
    db, out = tmp_path / "pw.db", tmp_path / "cfg" / "wb-9.json"
    open_store(tmp_path / "pw.db", create=True).close()
    r = runner.invoke(app, ["device", "add", "wb-9", "--out", str(out), "--db", str(db),
                            "--site", "s1", "--indicator", "10.0.0.7:502",
                            "--broker", "10.0.0.2:1884"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(out.read_text())
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert (cfg["device_id"], cfg["site"], cfg["mqtt"]["port"]) == ("wb-9", "s1", 1884)
    assert cfg["driver"]["host"] == "10.0.0.7" and cfg["driver"]["port"] == 502
    row = registry.get(open_store(db, create=True), "wb-9")
    assert row["secret_hex"] == cfg["secret_hex"]
    assert cfg["mqtt"]["password"] not in json.dumps(row)  # only its hash is kept


def test_cli_device_add_refuses_bad_input_with_a_hint(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(tmp_path / "pw.db", create=True).close()
    base = ["device", "add", "--out", str(tmp_path / "x.json"), "--db", str(db)]
    bad_port = runner.invoke(app, [*base[:2], "wb-1", *base[2:], "--indicator", "host:99999"])
    assert bad_port.exit_code == 1 and "HOST:PORT" in bad_port.output
    bad_id = runner.invoke(app, [*base[:2], "wb/1", *base[2:]])
    assert bad_id.exit_code == 1 and "device id" in bad_id.output
    runner.invoke(app, [*base[:2], "wb-1", *base[2:]])
    again = runner.invoke(app, [*base[:2], "wb-1", *base[2:]])
    assert again.exit_code == 1 and "already registered" in again.output


def test_cli_token_create_prints_a_working_token(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(tmp_path / "pw.db", create=True).close()
    r = runner.invoke(app, ["token", "create", "--role", "auditor", "--name", "a", "--db", str(db)])
    assert r.exit_code == 0
    assert auth.role_of(open_store(db, create=True), r.output.strip()) == "auditor"
    bad = runner.invoke(app, ["token", "create", "--role", "root", "--name", "a", "--db", str(db)])
    assert bad.exit_code == 1 and "unknown role" in bad.output


def test_cli_device_list_shows_devices(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(tmp_path / "pw.db", create=True).close()
    registry.provision(open_store(db, create=True), device_id="wb-3", site="s", kind="weighbridge")
    r = runner.invoke(app, ["device", "list", "--db", str(db)], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "wb-3" in r.output and "never" in r.output


def test_cli_broker_config_writes_passwd_and_acl_from_the_registry(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(tmp_path / "pw.db", create=True).close()
    registry.provision(open_store(db, create=True), device_id="wb-4", site="s1", kind="weighbridge")
    r = runner.invoke(app, ["broker", "config", "--out", str(tmp_path / "b"), "--db", str(db),
                            "--site", "s1"])
    assert r.exit_code == 0, r.output
    users = {line.split(":")[0] for line in (tmp_path / "b" / "passwd").read_text().splitlines()}
    assert users == {"wb-4", "portwatch-controller"}
    assert "topic write pw/v1/s1/wb-4/evt" in (tmp_path / "b" / "acl").read_text()
    assert "acl_file" in r.output and "HUP" in r.output


def test_cli_device_rotate_key_writes_the_new_config_over_the_old(tmp_path: Path) -> None:
    db, cfg_path = tmp_path / "pw.db", tmp_path / "wb-5.json"
    open_store(db, create=True).close()
    runner.invoke(app, ["device", "add", "wb-5", "--out", str(cfg_path), "--db", str(db)])
    old = json.loads(cfg_path.read_text())
    r = runner.invoke(app, ["device", "rotate-key", "wb-5", "--grace-s", "60", "--out",
                            str(cfg_path), "--db", str(db)])
    assert r.exit_code == 0, r.output
    new = json.loads(cfg_path.read_text())
    assert stat.S_IMODE(cfg_path.stat().st_mode) == 0o600
    row = registry.get(open_store(db, create=True), "wb-5")
    assert (new["key_id"], new["secret_hex"]) == ("k2", row["secret_hex"])
    assert new["secret_hex"] != old["secret_hex"] and new["mqtt"] == old["mqtt"]
    [record] = open_store(db, create=True).db["key_rotations"].rows
    assert record["actor"].startswith("cli:") and record["new_key_id"] == "k2"


def test_cli_device_rotate_key_without_a_config_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(tmp_path / "pw.db", create=True).close()
    registry.provision(open_store(db, create=True), device_id="wb-6", site="s", kind="weighbridge")
    r = runner.invoke(app, ["device", "rotate-key", "wb-6", "--out", str(tmp_path / "n.json"),
                            "--db", str(db)])
    assert r.exit_code == 1 and "--config" in r.output
    assert registry.get(open_store(db, create=True), "wb-6")["key_id"] == "k1"


def test_cli_device_add_refuses_an_unknown_map_before_registering(tmp_path: Path) -> None:
    db, out = tmp_path / "pw.db", tmp_path / "wb-7.json"
    open_store(tmp_path / "pw.db", create=True).close()
    r = runner.invoke(app, ["device", "add", "wb-7", "--out", str(out), "--db", str(db),
                            "--map", "no-such-map"], env={"COLUMNS": "200"})
    assert r.exit_code == 1, r.output
    assert "unknown register map 'no-such-map'" in r.output
    assert "portwatch-sim" in r.output and "float32-le-sim" in r.output
    assert not out.exists()
    assert not open_store(db, create=True).db["devices"].count_where("device_id = ?", ["wb-7"])
    slow = runner.invoke(app, ["device", "add", "wb-7", "--out", str(out), "--db", str(db),
                               "--stable-s", "0.1", "--poll-ms", "200"], env={"COLUMNS": "200"})
    assert slow.exit_code == 1 and "shorter than 2 polls" in slow.output


def test_cli_missing_or_mistyped_store_is_an_error_that_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-dir" / "pw.db"
    for args in (["device", "list"], ["token", "list"], ["alert", "list"],
                 ["token", "create", "--role", "admin", "--name", "x"],
                 ["broker", "config", "--out", str(tmp_path / "b")]):
        r = runner.invoke(app, [*args, "--db", str(typo)])
        assert r.exit_code == 1, (args, r.output)
        assert "no store at" in r.output and "portwatch init" in r.output, args
        assert "Traceback" not in r.output
    assert not typo.parent.exists()
    made = runner.invoke(app, ["init", "--db", str(typo)])
    assert made.exit_code == 0 and typo.is_file(), made.output
    assert runner.invoke(app, ["device", "list", "--db", str(typo)]).exit_code == 0


def test_cli_rotate_key_of_an_unknown_device_names_the_device_not_a_file(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    r = runner.invoke(app, ["device", "rotate-key", "wb-404", "--out", str(tmp_path / "x.json"),
                            "--db", str(db)])
    assert r.exit_code == 1 and "no device 'wb-404'" in r.output, r.output
    assert "config" not in r.output


def test_cli_tokens_are_listed_and_revoked(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    token = runner.invoke(app, ["token", "create", "--role", "operator", "--name", "ops",
                                "--db", str(db)]).output.strip()
    listed = runner.invoke(app, ["token", "list", "--db", str(db)])
    assert "ops" in listed.output and "operator" in listed.output and token not in listed.output
    r = runner.invoke(app, ["token", "revoke", "ops", "--db", str(db)])
    assert r.exit_code == 0 and "revoked token" in r.output
    assert auth.role_of(open_store(db), token) is None
    again = runner.invoke(app, ["token", "revoke", "ops", "--db", str(db)])
    assert again.exit_code == 1 and "no live token" in again.output


def test_cli_decommission_and_alert_list(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    registry.provision(open_store(db, create=True), device_id="wb-8", site="s",
                       kind="weighbridge")
    r = runner.invoke(app, ["device", "decommission", "wb-8", "--reason", "rebuilt",
                            "--db", str(db)])
    assert r.exit_code == 0 and "decommissioned" in r.output, r.output
    assert "decommissioned" in runner.invoke(app, ["device", "list", "--db", str(db)]).output
    again = runner.invoke(app, ["device", "decommission", "wb-8", "--reason", "x",
                                "--db", str(db)])
    assert again.exit_code == 1 and "was decommissioned" in again.output
    alerts = runner.invoke(app, ["alert", "list", "--all", "--db", str(db)])
    assert alerts.exit_code == 0 and "severity" in alerts.output
