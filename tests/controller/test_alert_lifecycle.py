"""The alert lifecycle against a real SQLite store: open -> acknowledged -> resolved, each
transition a ledger decision; the audit rebuilds ``alerts`` from those decisions and names
a row edited, deleted or added behind the controller's back; the `portwatch alert` CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from controller import alerts, audit, registry
from controller.errors import Conflict, InvalidInput
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log, read_snapshot
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed
from tools.cli import app

T0 = 1764072000000


def _decisions(db: Store) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for _, data, _h in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == "alert":
            out.append((e.actor, e.body))
    return out


def _raise(db: Store, active: bool = True, *, at: int = T0) -> bool:
    with db.transaction() as conn:
        return apply_alert(conn, "tare_history", Alert("tare_deviation", "wb-1", active,
                                                       "warning", "plate A1", {"kg": 400}),
                           device_ts=at - 100, received_ms=at, seq=7,
                           cause={"device_id": "wb-1", "seq": 7})


def _alarm(device: dict[str, Any], seq: int, code: str, state: str) -> Any:
    return signed(device, seq=seq, kind="alarm", body={"alarm": code, "state": state},
                  ts=T0 + seq * 1000 - 200, received_ms=T0 + seq * 1000)


def _audit(db: Store) -> audit.AuditReport:
    with read_snapshot(db.path) as conn:
        return audit.audit_store(conn)


def test_alert_reraised_while_acknowledged_changes_nothing_and_the_rule_resolves_it(
        db: Store) -> None:
    assert _raise(db) is True
    [row] = alerts.list_alerts(db)
    acked = alerts.acknowledge(db, row["id"], actor="token:ops (operator)",
                               comment="weighing the truck again")
    assert acked["state"] == "acknowledged"
    assert _raise(db, at=T0 + 5000) is False  # the same alert again: nothing changes
    [still] = alerts.list_alerts(db, state="active")
    assert (still["id"], still["raised_ms"], still["acked_by"]) == (
        row["id"], T0, "token:ops (operator)")
    assert _raise(db, False, at=T0 + 9000) is True  # the rule clears it: resolved
    done = alerts.get_alert(db, row["id"])
    assert (done["state"], done["cleared_by"], done["cleared_ms"]) == (
        "resolved", "rule:tare_history", T0 + 9000)
    assert [h["action"] for h in done["history"]] == ["raise", "acknowledge", "clear"]
    assert [(actor, b["action"]) for actor, b in _decisions(db)] == [
        ("rule:tare_history", "raise"), ("token:ops (operator)", "acknowledge"),
        ("rule:tare_history", "clear")]
    assert _decisions(db)[1][1]["comment"] == "weighing the truck again"
    with pytest.raises(Conflict, match="already resolved by rule:tare_history"):
        alerts.resolve(db, row["id"], actor="token:ops (operator)", comment="late")


def test_alert_transitions_refuse_an_empty_comment_and_an_unknown_state(db: Store) -> None:
    _raise(db)
    [row] = alerts.list_alerts(db)
    for bad in ("", "   ", "x" * 501):
        with pytest.raises(InvalidInput, match="comment of 1-500"):
            alerts.acknowledge(db, row["id"], actor="cli:me", comment=bad)
    with pytest.raises(InvalidInput, match="not one of"):
        alerts.list_alerts(db, state="closed")
    assert alerts.get_alert(db, row["id"])["state"] == "open"
    assert [b["action"] for _, b in _decisions(db)] == ["raise"]


def test_alert_audit_rebuilds_the_lifecycle_from_the_ledger_clean(
        db: Store, device: dict[str, Any]) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in (
        _alarm(device, 1, "overload", "raised"), _alarm(device, 2, "left_unweighed", "raised"),
        _alarm(device, 3, "zero_drift", "raised"))], supervise=Runner())
    commit_batch(db.conn, [check_message(_alarm(device, 4, "overload", "cleared"), site=SITE,
                                         keys=keys)], supervise=Runner())
    ids = {a["code"]: a["id"] for a in alerts.list_alerts(db, active=None)}
    alerts.acknowledge(db, ids["left_unweighed"], actor="token:a (operator)", comment="on it")
    alerts.resolve(db, ids["left_unweighed"], actor="token:a (operator)", comment="back")
    alerts.acknowledge(db, ids["zero_drift"], actor="token:b (operator)", comment="tech called")
    report = _audit(db)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.tables["alerts"].checked == 3


def test_alert_audit_names_a_row_edited_deleted_or_added_behind_the_controllers_back(
        db: Store) -> None:
    _raise(db)
    [row] = alerts.list_alerts(db)
    alerts.acknowledge(db, row["id"], actor="token:ops (operator)", comment="on it")
    position = audit_reads_size(db)
    with db.transaction() as conn:  # someone hides who acknowledged, and closes it quietly
        conn.execute("UPDATE alerts SET acked_by='nobody', cleared_ms=1 WHERE id=?",
                     (row["id"],))
        conn.execute("INSERT INTO alerts (rule, code, device_id, subject, severity, "
                     "detail_json, raised_ts, raised_ms) VALUES ('x','forged','wb-1','','info',"
                     "'{}',1,1)")
    report = _audit(db)
    found = {(m.table, m.key, m.problem): m for m in report.mismatches}
    edited = found[("alerts", str(row["id"]), "edited")]
    assert {c for c, _s, _e in edited.columns} == {"acked_by", "cleared_ms"}
    assert ("alerts", str(row["id"] + 1), "added") in found
    with db.transaction() as conn:
        conn.execute("DELETE FROM alerts WHERE id=?", (row["id"],))
    assert ("alerts", str(row["id"]), "deleted") in {
        (m.table, m.key, m.problem) for m in _audit(db).mismatches}
    # the controller's incremental audit: the acknowledge decision's row is gone too
    with read_snapshot(db.path) as conn:
        new, _ = audit.audit_new(conn, position - 1, audit.Replay.load(conn))
    assert [(m.table, m.problem) for m in new.mismatches] == [("alerts", "deleted")]


def audit_reads_size(db: Store) -> int:
    from controller.storage import audit_reads
    return audit_reads.size(db.conn)


def test_alert_cli_lists_shows_acknowledges_and_resolves(db: Store, db_path: Path) -> None:
    _raise(db)
    [row] = alerts.list_alerts(db)
    run = CliRunner()
    base = ["--db", str(db_path)]
    listed = run.invoke(app, ["alert", "list", "--state", "open", *base])
    assert listed.exit_code == 0 and "tare_d" in listed.output and "open" in listed.output
    no_comment = run.invoke(app, ["alert", "ack", str(row["id"]), *base])
    assert no_comment.exit_code != 0
    acked = run.invoke(app, ["alert", "ack", str(row["id"]), "-m", "driver called", *base])
    assert acked.exit_code == 0 and "acknowledged" in acked.output, acked.output
    done = run.invoke(app, ["alert", "resolve", str(row["id"]), "-m", "tare re-taken", *base])
    assert done.exit_code == 0 and "resolved" in done.output, done.output
    shown = run.invoke(app, ["alert", "show", str(row["id"]), "--json", *base])
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert [(h["action"], h["comment"]) for h in body["history"]] == [
        ("raise", ""), ("acknowledge", "driver called"), ("resolve", "tare re-taken")]
    assert body["acked_by"].startswith("cli:")
    again = run.invoke(app, ["alert", "resolve", str(row["id"]), "-m", "x", *base])
    assert again.exit_code == 1 and "already resolved" in again.output
    missing = run.invoke(app, ["alert", "show", "999", *base])
    assert missing.exit_code == 1 and "no alert 999" in missing.output
    bad_state = run.invoke(app, ["alert", "list", "--state", "closed", *base])
    assert bad_state.exit_code == 1 and "not one of" in bad_state.output
    for sub in ("list", "show", "ack", "resolve"):
        helped = run.invoke(app, ["alert", sub, "--help"])
        assert helped.exit_code == 0 and "Example: portwatch alert" in helped.output


def test_alert_audit_takes_a_store_tampered_alert_from_before_its_alert_decision(
        db: Store) -> None:
    """A store upgraded from before the lifecycle: its store_tampered alerts have only
    their audit_mismatch decision; they are not reported as added, a made-up one is."""
    body = {"table": "weighings", "key": "wb-1/3", "problem": "edited"}
    with db.transaction() as conn:
        ledger_log.append_decision(conn, "audit_mismatch", "controller", body, T0)
        for subject, at in (("weighings wb-1/3", T0), ("weighings wb-1/4", T0)):
            conn.execute("INSERT INTO alerts (rule, code, device_id, subject, severity, "
                         "detail_json, raised_ts, raised_ms) VALUES ('audit', "
                         "'store_tampered', 'wb-1', ?, 'critical', '{}', ?, ?)",
                         (subject, at, at))
    got = [(m.key, m.problem) for m in _audit(db).mismatches]
    assert got == [("2", "added")]
