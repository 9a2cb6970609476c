"""Rows of the controller's commands to devices and of the out-gate decisions.

A command is ``pending`` from its issue until the device acknowledges it (``acked``, its
``cmdack`` body in ``ack_json``) or it expires unacknowledged (``expired``); a device that
answers ``failed`` or ``refused`` leaves it ``failed``. ``attempts`` and
``last_sent_ms`` record the deliveries tried.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

_COLUMNS = ("id, device_id, kind, body_json, issued_ms, expires_ms, attempts, last_sent_ms, "
            "state, ack_json, acked_ms")
_NAMES = _COLUMNS.split(", ")


def _dict(row: Any) -> dict[str, Any]:
    return dict(zip(_NAMES, row, strict=True))


def insert(conn: sqlite3.Connection, command_id: str, device_id: str, kind: str,
           body: dict[str, Any], issued_ms: int, expires_ms: int) -> None:
    """A new pending command (inside the caller's transaction)."""
    conn.execute("INSERT INTO commands (id, device_id, kind, body_json, issued_ms, expires_ms, "
                 "attempts, state) VALUES (?,?,?,?,?,?,0,'pending')",
                 [command_id, device_id, kind, json.dumps(body, sort_keys=True), issued_ms,
                  expires_ms])


def get(conn: sqlite3.Connection, command_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM commands WHERE id=?", [command_id]).fetchone()
    return None if row is None else _dict(row)


def pending(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every pending command, oldest first."""
    return [_dict(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM commands WHERE state='pending' ORDER BY issued_ms, id")]


def mark_sent(conn: sqlite3.Connection, command_id: str, sent_ms: int) -> None:
    conn.execute("UPDATE commands SET attempts = attempts + 1, last_sent_ms=? WHERE id=?",
                 [sent_ms, command_id])


def settle(conn: sqlite3.Connection, command_id: str, state: str,
           ack: dict[str, Any] | None, at_ms: int) -> bool:
    """Move a pending command to ``state``; False when it was no longer pending."""
    cur = conn.execute("UPDATE commands SET state=?, ack_json=?, acked_ms=? "
                       "WHERE id=? AND state='pending'",
                       [state, None if ack is None else json.dumps(ack, sort_keys=True),
                        at_ms if ack is not None else None, command_id])
    return cur.rowcount == 1


def record_late_ack(conn: sqlite3.Connection, command_id: str, ack: dict[str, Any],
                    at_ms: int) -> None:
    """An acknowledgement that came after the command was settled: kept, state unchanged."""
    conn.execute("UPDATE commands SET ack_json=?, acked_ms=? WHERE id=? AND ack_json IS NULL",
                 [json.dumps(ack, sort_keys=True), at_ms, command_id])


def list_commands(conn: sqlite3.Connection, *, device_id: str | None = None,
                  state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Commands, newest first, optionally of one device and in one state."""
    where, args = [], []
    if device_id is not None:
        where.append("device_id=?")
        args.append(device_id)
    if state is not None:
        where.append("state=?")
        args.append(state)
    sql = f"SELECT {_COLUMNS} FROM commands"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return [_dict(r) for r in conn.execute(sql + " ORDER BY issued_ms DESC, id DESC LIMIT ?",
                                           [*args, limit])]


# -- out-gate decisions -------------------------------------------------------------------


def insert_gate_decision(conn: sqlite3.Connection, row: dict[str, Any]) -> bool:
    """Record the decision for one weighing; False when one was already made for it."""
    cols = ", ".join(row)
    cur = conn.execute(f"INSERT OR IGNORE INTO gate_decisions ({cols}) VALUES "
                       f"({', '.join('?' * len(row))})", list(row.values()))
    return cur.rowcount == 1


def gate_decision(conn: sqlite3.Connection, device_id: str,
                  weighing_seq: int) -> dict[str, Any] | None:
    cur = conn.execute("SELECT * FROM gate_decisions WHERE device_id=? AND weighing_seq=?",
                       [device_id, weighing_seq])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def undecided_weighings(conn: sqlite3.Connection, device_ids: list[str],
                        since_ms: int) -> list[dict[str, Any]]:
    """Weighings of these devices received since ``since_ms`` without a gate decision,
    oldest first (what a crash between a batch's commit and its decisions left)."""
    if not device_ids:
        return []
    marks = ",".join("?" * len(device_ids))
    cur = conn.execute(
        "SELECT w.device_id, w.seq, w.plate, w.gross_kg, w.tare_kg, w.net_kg, w.division_kg, "
        "w.arrived_ts, w.device_ts, w.received_ms FROM weighings w "
        f"WHERE w.device_id IN ({marks}) AND w.received_ms >= ? AND NOT EXISTS ("
        "SELECT 1 FROM gate_decisions g WHERE g.device_id = w.device_id "
        "AND g.weighing_seq = w.seq) ORDER BY w.received_ms, w.seq", [*device_ids, since_ms])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def weighing(conn: sqlite3.Connection, device_id: str, seq: int) -> dict[str, Any] | None:
    """One stored weighing row, or None."""
    cur = conn.execute("SELECT * FROM weighings WHERE device_id=? AND seq=?", [device_id, seq])
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def device_clock_offset(conn: sqlite3.Connection, device_id: str) -> int | None:
    """The device's clock minus the controller's at its last health (ms), or None."""
    row = conn.execute("SELECT clock_offset_ms FROM devices WHERE device_id=?",
                       [device_id]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


@contextlib.contextmanager
def savepoint(conn: sqlite3.Connection, name: str = "gate_decision") -> Iterator[None]:
    """A savepoint inside the caller's transaction: what fails in it is undone alone (the
    exception goes on), the rest of the transaction stays."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def all_commands(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every command (the audit compares what its issue fixed)."""
    return [_dict(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM commands ORDER BY id")]


def all_gate_decisions(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every out-gate decision (the audit compares them all)."""
    cur = conn.execute("SELECT * FROM gate_decisions ORDER BY device_id, weighing_seq")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def recent_gate_decisions(conn: sqlite3.Connection, *, device_id: str | None = None,
                          limit: int = 50) -> list[dict[str, Any]]:
    """Out-gate decisions, latest first, with the plate and net of the weighing decided."""
    sql = ("SELECT g.*, w.net_kg AS net_kg, w.gross_kg AS gross_kg FROM gate_decisions g "
           "LEFT JOIN weighings w ON w.device_id = g.device_id AND w.seq = g.weighing_seq")
    args: list[Any] = []
    if device_id is not None:
        sql += " WHERE g.device_id = ?"
        args.append(device_id)
    cur = conn.execute(sql + " ORDER BY g.decided_ms DESC, g.weighing_seq DESC LIMIT ?",
                       [*args, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
