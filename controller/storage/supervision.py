"""Supervision's rows: each rule's state per scope, and the alerts rules raise."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from controller.storage.database import Store


def load_states(conn: sqlite3.Connection, rule: str,
                scopes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{scope: state} of one rule for the given scopes (absent scopes are left out)."""
    wanted = sorted(set(scopes))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    return {str(s): json.loads(j) for s, j in conn.execute(
        f"SELECT scope, state_json FROM rule_state WHERE rule=? AND scope IN ({marks})",
        [rule, *wanted])}


def save_states(conn: sqlite3.Connection, rule: str, states: Mapping[str, Mapping[str, Any]],
                now_ms: int) -> None:
    conn.executemany("INSERT OR REPLACE INTO rule_state (rule, scope, state_json, updated_ms) "
                     "VALUES (?,?,?,?)",
                     [(rule, scope, json.dumps(state, ensure_ascii=False, sort_keys=True),
                       now_ms) for scope, state in states.items()])


def active_alert_id(conn: sqlite3.Connection, rule: str, device_id: str, code: str,
                    subject: str) -> int | None:
    row = conn.execute("SELECT id FROM alerts WHERE cleared_ms IS NULL AND rule=? AND "
                       "device_id=? AND code=? AND subject=? ORDER BY id LIMIT 1",
                       (rule, device_id, code, subject)).fetchone()
    return None if row is None else int(row[0])


def active_alerts(conn: sqlite3.Connection, rule: str, device_id: str,
                  code: str) -> list[dict[str, Any]]:
    """The active alerts of one rule, device and code (any subject): id and subject."""
    return [{"id": int(i), "subject": str(s)} for i, s in conn.execute(
        "SELECT id, subject FROM alerts WHERE cleared_ms IS NULL AND rule=? AND device_id=? "
        "AND code=? ORDER BY id", (rule, device_id, code))]


def raise_alert(conn: sqlite3.Connection, *, rule: str, code: str, device_id: str,
                subject: str, severity: str, detail: Mapping[str, Any], raised_ts: int,
                raised_ms: int, raised_seq: int | None) -> int:
    cur = conn.execute(
        "INSERT INTO alerts (rule, code, device_id, subject, severity, detail_json, raised_ts, "
        "raised_ms, raised_seq) VALUES (?,?,?,?,?,?,?,?,?)",
        (rule, code, device_id, subject, severity, json.dumps(detail, ensure_ascii=False),
         raised_ts, raised_ms, raised_seq))
    return int(cur.lastrowid or 0)


def clear_alert(conn: sqlite3.Connection, alert_id: int, *, cleared_ts: int | None,
                cleared_ms: int, cleared_seq: int | None, cleared_by: str) -> None:
    conn.execute("UPDATE alerts SET cleared_ts=?, cleared_ms=?, cleared_seq=?, cleared_by=? "
                 "WHERE id=?", (cleared_ts, cleared_ms, cleared_seq, cleared_by, alert_id))


def get_alert(store: Store, alert_id: int) -> dict[str, Any] | None:
    rows = list(store.db.query("SELECT * FROM alerts WHERE id=?", [alert_id]))
    return rows[0] if rows else None


def list_alerts(store: Store, *, active: bool | None, device_id: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first; ``active`` True: not cleared, False: cleared, None: all."""
    where, args = [], []
    if active is not None:
        where.append("cleared_ms IS NULL" if active else "cleared_ms IS NOT NULL")
    if device_id is not None:
        where.append("device_id = ?")
        args.append(device_id)
    sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    return list(store.db.query(sql + " ORDER BY raised_ms DESC, id DESC LIMIT ?",
                               [*args, limit]))
