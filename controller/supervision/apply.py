"""Store one alert finding and its ledger decision, inside the caller's transaction.

The one place an alert is raised or cleared: the rule runner calls it for the findings of
pure rules, and the controller's own checks that are not rules of ``rules/`` (a command
no device acknowledged, a gate decision) call it with the same finding values, so every
alert has the same row and the same ledger decision whoever raised it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from controller.storage import ledger_log
from controller.storage import supervision as rows
from controller.supervision.findings import Alert


def apply_alert(conn: sqlite3.Connection, rule: str, finding: Alert, *, device_ts: int | None,
                received_ms: int, seq: int | None = None,
                cause: Mapping[str, Any] | None = None) -> bool:
    """Raise or clear ``finding`` for ``rule``; False when it changes nothing (already so).

    ``cause`` names what led to it in the ledger decision (the fact: device and seq).
    """
    current = rows.active_alert_id(conn, rule, finding.device_id, finding.code,
                                   finding.subject)
    if finding.active == (current is not None):
        return False
    ts = device_ts
    if finding.active:
        ts = device_ts if device_ts is not None else received_ms
        alert_id = rows.raise_alert(
            conn, rule=rule, code=finding.code, device_id=finding.device_id,
            subject=finding.subject, severity=finding.severity, detail=finding.detail,
            raised_ts=ts, raised_ms=received_ms, raised_seq=seq)
    else:
        # clearing an acknowledged alert resolves it too: the lifecycle ends either way
        assert current is not None
        alert_id = current
        rows.clear_alert(conn, alert_id, cleared_ts=device_ts, cleared_ms=received_ms,
                         cleared_seq=seq, cleared_by=f"rule:{rule}")
    # rule, ts and seq let the audit rebuild the row from this decision alone
    entry: dict[str, Any] = {
        "alert_id": alert_id, "action": "raise" if finding.active else "clear",
        "rule": rule, "code": finding.code, "device_id": finding.device_id,
        "subject": finding.subject, "severity": finding.severity,
        "detail": dict(finding.detail), "ts": ts, "seq": seq}
    if cause is not None:
        entry["fact"] = dict(cause)
    ledger_log.append_decision(conn, "alert", f"rule:{rule}", entry, received_ms)
    return True
