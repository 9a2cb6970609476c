"""``portwatch jtt808``: add-terminal, login and status on a real store and status file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from controller import broker_auth, registry
from controller.storage import open_store
from tools.cli import app

runner = CliRunner()


def test_jtt808_add_terminal_provisions_a_gps_device_named_after_the_phone(tmp_path: Path):
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    r = runner.invoke(app, ["jtt808", "add-terminal", "013800138000", "--db", str(db),
                            "--site", "s1"])
    assert r.exit_code == 0, r.output
    assert "jt-13800138000" in r.output
    store = open_store(db)
    try:
        row = registry.get(store, "jt-13800138000")
        assert row["kind"] == "gps" and row["site"] == "s1"
    finally:
        store.close()
    again = runner.invoke(app, ["jtt808", "add-terminal", "13800138000", "--db", str(db)])
    assert again.exit_code == 1 and "already registered" in again.output


def test_jtt808_add_terminal_refuses_what_is_not_a_phone_number(tmp_path: Path):
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    r = runner.invoke(app, ["jtt808", "add-terminal", "138-0013", "--db", str(db)])
    assert r.exit_code == 1 and "up to 20 digits" in r.output


def test_jtt808_login_adds_the_gateway_account_to_the_broker_files(tmp_path: Path):
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    runner.invoke(app, ["jtt808", "add-terminal", "13800138000", "--db", str(db),
                        "--site", "s1"])
    r = runner.invoke(app, ["jtt808", "login", "--db", str(db)])
    assert r.exit_code == 0 and "portwatch-jtt808" in r.output
    store = open_store(db)
    try:
        users = {a.user: a.rules for a in broker_auth.accounts(store, site="s1")}
    finally:
        store.close()
    assert users["portwatch-jtt808"] == (
        "topic write pw/v1/s1/jt-13800138000/evt", "topic write pw/v1/s1/jt-13800138000/state",
        "topic read pw/v1/s1/jt-13800138000/ack")


def test_jtt808_status_prints_the_counters_or_says_where_it_looked(tmp_path: Path):
    missing = runner.invoke(app, ["jtt808", "status", "--state-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "is `portwatch jtt808 serve` running" in missing.output
    doc = {"site": "s1", "boot": 3, "pid": 42, "terminals_online": ["jt-1"], "outbox": 5,
           "terminal_side": {"connections": 2, "reports": 9, "fixes": 12, "answered": 9,
                             "unanswered": 0, "registrations_refused": 1,
                             "bad_frames": {"garbage": 2}, "dropped_bytes": 17},
           "broker_side": {"connected": True, "published": 9, "acks": 4}}
    (tmp_path / "status.json").write_text(json.dumps(doc))
    r = runner.invoke(app, ["jtt808", "status", "--state-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert "boot 3" in r.output and "garbage" in r.output and "outbox 5" in r.output
    raw = runner.invoke(app, ["jtt808", "status", "--state-dir", str(tmp_path), "--json"])
    assert json.loads(raw.output)["outbox"] == 5
