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


STATES = ("open", "acknowledged", "resolved", "active")
# the lifecycle as SQL: resolved = cleared_ms set (by the rule or an operator); acknowledged
# = acked but not resolved; active = open or acknowledged
_STATE_SQL = {"open": "cleared_ms IS NULL AND acked_ms IS NULL",
              "acknowledged": "cleared_ms IS NULL AND acked_ms IS NOT NULL",
              "resolved": "cleared_ms IS NOT NULL",
              "active": "cleared_ms IS NULL"}


def alert_state(row: Mapping[str, Any]) -> str:
    """open, acknowledged or resolved, from an ``alerts`` row."""
    if row.get("cleared_ms") is not None:
        return "resolved"
    return "acknowledged" if row.get("acked_ms") is not None else "open"


def acknowledge_alert(conn: sqlite3.Connection, alert_id: int, *, acked_ms: int,
                      acked_by: str, comment: str) -> None:
    conn.execute("UPDATE alerts SET acked_ms=?, acked_by=?, ack_comment=? WHERE id=?",
                 (acked_ms, acked_by, comment, alert_id))


def resolve_alert(conn: sqlite3.Connection, alert_id: int, *, resolved_ms: int,
                  resolved_by: str, comment: str) -> None:
    """An operator resolves it: cleared_* (resolved) with the comment."""
    conn.execute("UPDATE alerts SET cleared_ts=NULL, cleared_ms=?, cleared_seq=NULL, "
                 "cleared_by=?, resolve_comment=? WHERE id=?",
                 (resolved_ms, resolved_by, comment, alert_id))


def alert_in(conn: sqlite3.Connection, alert_id: int) -> dict[str, Any] | None:
    """One alert row read inside ``conn``'s transaction."""
    cur = conn.execute("SELECT * FROM alerts WHERE id=?", (alert_id,))
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([c[0] for c in cur.description], row, strict=True))


def all_alert_rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every alert row, by id (the audit compares them with the ledger's)."""
    cur = conn.execute("SELECT * FROM alerts ORDER BY id")
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def list_alerts(store: Store, *, active: bool | None = None, state: str | None = None,
                device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first; ``state`` (open, acknowledged, resolved, active) wins over
    ``active`` (True: not resolved, False: resolved, None: all)."""
    where, args = [], []
    if state is not None:
        if state not in _STATE_SQL:
            raise ValueError(f"state {state!r} is not one of {STATES}")
        where.append(_STATE_SQL[state])
    elif active is not None:
        where.append("cleared_ms IS NULL" if active else "cleared_ms IS NOT NULL")
    if device_id is not None:
        where.append("device_id = ?")
        args.append(device_id)
    sql = "SELECT * FROM alerts" + (" WHERE " + " AND ".join(where) if where else "")
    return list(store.db.query(sql + " ORDER BY raised_ms DESC, id DESC LIMIT ?",
                               [*args, limit]))


def alert_decisions(conn: sqlite3.Connection, after_idx: int,
                    limit: int) -> list[tuple[int, bytes, bytes]]:
    """(idx, entry, leaf_hash) of up to ``limit`` ``alert`` decisions past ``after_idx``, in
    log order: what the audit rebuilds ``alerts`` from."""
    return [(int(i), bytes(e), bytes(h)) for i, e, h in conn.execute(
        "SELECT idx, entry, leaf_hash FROM ledger_entries WHERE kind='decision' AND "
        "subkind='alert' AND idx>? ORDER BY idx LIMIT ?", (after_idx, limit))]


def decisions_of(conn: sqlite3.Connection, kind: str) -> list[bytes]:
    """The entries of every decision of one kind, in log order (kinds with few entries)."""
    return [bytes(e) for (e,) in conn.execute(
        "SELECT entry FROM ledger_entries WHERE kind='decision' AND subkind=? ORDER BY idx",
        (kind,))]

