"""Lots' rows (``lots``) and their status history (``lot_events``): written only by
controller/lots.py through the fold in controller/projections/lots.py."""

from __future__ import annotations

import sqlite3
from typing import Any

# the projection's columns (controller/projections/lots.py; storage may not import it:
# tests/controller/test_lots.py checks the two agree)
LOT_COLUMNS = ("lot_id", "declaration_no", "commodity", "hs_code", "origin_country", "vessel",
               "declared_kg", "kind", "status", "created_ms", "updated_ms",
               "released_before_test", "held_from", "created_by")
EVENT_COLUMNS = ("lot_id", "idx", "status", "reason", "actor", "time_ms")

Row = dict[str, Any]
_LOTS = ", ".join(LOT_COLUMNS)
_EVENTS = ", ".join(EVENT_COLUMNS)


def get_lot(conn: sqlite3.Connection, lot_id: str) -> Row | None:
    """The ``lots`` row of ``lot_id``, or None."""
    row = conn.execute(f"SELECT {_LOTS} FROM lots WHERE lot_id=?", [lot_id]).fetchone()
    return None if row is None else dict(zip(LOT_COLUMNS, row, strict=True))


def put_lot(conn: sqlite3.Connection, row: Row) -> None:
    """Insert or replace a lot's row (inside the caller's transaction)."""
    conn.execute(f"INSERT OR REPLACE INTO lots ({_LOTS}) VALUES "
                 f"({','.join('?' * len(LOT_COLUMNS))})", [row[c] for c in LOT_COLUMNS])


def insert_event(conn: sqlite3.Connection, row: Row) -> None:
    """One status-history row (inside the caller's transaction)."""
    conn.execute(f"INSERT INTO lot_events ({_EVENTS}) VALUES "
                 f"({','.join('?' * len(EVENT_COLUMNS))})", [row[c] for c in EVENT_COLUMNS])


def events(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """A lot's status history, oldest first."""
    rows = conn.execute(f"SELECT {_EVENTS} FROM lot_events WHERE lot_id=? ORDER BY idx",
                        [lot_id]).fetchall()
    return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]


def list_lots(conn: sqlite3.Connection, *, status: str | None = None,
              vessel: str | None = None, kind: str | None = None,
              limit: int = 100) -> list[Row]:
    """Lots, newest first, filtered by status, vessel and kind."""
    where, args = [], []
    for col, val in (("status", status), ("vessel", vessel), ("kind", kind)):
        if val is not None:
            where.append(f"{col}=?")
            args.append(val)
    sql = f"SELECT {_LOTS} FROM lots"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = conn.execute(sql + " ORDER BY created_ms DESC, lot_id LIMIT ?",
                        [*args, limit]).fetchall()
    return [dict(zip(LOT_COLUMNS, r, strict=True)) for r in rows]


def unloading_at(conn: sqlite3.Connection, time_ms: int) -> str | None:
    """The lot whose status was ``unloading`` at ``time_ms`` (the latest to start, if
    several): an ``unloading`` event at or before then with no later event of that lot
    at or before then but a hold (a lot held while it unloads, by a quarantine finding
    say, is still on the unloading line: its later samples are still its own)."""
    row = conn.execute(
        "SELECT e.lot_id FROM lot_events e WHERE e.status='unloading' AND e.time_ms<=? "
        "AND NOT EXISTS (SELECT 1 FROM lot_events n WHERE n.lot_id=e.lot_id AND n.idx>e.idx "
        "AND n.time_ms<=? AND n.status NOT IN ('held', 'unloading')) "
        "ORDER BY e.time_ms DESC, e.idx DESC LIMIT 1",
        [time_ms, time_ms]).fetchone()
    return None if row is None else str(row[0])


def all_lots(conn: sqlite3.Connection) -> list[Row]:
    """Every lot (the audit compares them all)."""
    return [dict(zip(LOT_COLUMNS, r, strict=True))
            for r in conn.execute(f"SELECT {_LOTS} FROM lots ORDER BY lot_id")]


def all_events(conn: sqlite3.Connection) -> list[Row]:
    """Every status-history row (the audit compares them all)."""
    return [dict(zip(EVENT_COLUMNS, r, strict=True))
            for r in conn.execute(f"SELECT {_EVENTS} FROM lot_events ORDER BY idx")]
