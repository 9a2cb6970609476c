"""Trips and their events: rows projected from ``trip`` decisions, and their reads.

A trip's id is its order's id (one trip per order)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

# the tables' columns (schema.py); the projection makes rows with exactly these
TRIP_COLUMNS = ("trip_id", "tracker_id", "plate", "lot", "destination", "corridor",
                "gate_device", "weighing_seq", "net_kg", "departed_ms", "status", "arrived_ts",
                "closed_ms", "end_reason")
EVENT_COLUMNS = ("idx", "trip_id", "event", "time_ms", "actor", "detail_json")

Row = dict[str, Any]


def _rows(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def put_trip(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
    """Insert or replace one trip row (inside the caller's transaction)."""
    conn.execute(f"INSERT OR REPLACE INTO trips ({', '.join(TRIP_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(TRIP_COLUMNS))})", [row[c] for c in TRIP_COLUMNS])


def add_event(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
    """Insert one trip event row (keyed by its decision's ledger index)."""
    conn.execute(f"INSERT INTO trip_events ({', '.join(EVENT_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(EVENT_COLUMNS))})", [row[c] for c in EVENT_COLUMNS])


def get_trip(conn: sqlite3.Connection, trip_id: str) -> Row | None:
    """One trip, or None."""
    found = _rows(conn.execute("SELECT * FROM trips WHERE trip_id=?", (trip_id,)))
    return found[0] if found else None


def list_trips(conn: sqlite3.Connection, *, status: str | None = None,
               tracker_id: str | None = None, plate: str | None = None, limit: int = 100,
               offset: int = 0) -> list[Row]:
    """Trips, latest departure first, filtered by status, tracker and plate."""
    sql, args = "SELECT * FROM trips WHERE 1=1", []
    for col, value in (("status", status), ("tracker_id", tracker_id), ("plate", plate)):
        if value is not None:
            sql += f" AND {col}=?"
            args.append(value)
    sql += " ORDER BY departed_ms DESC, trip_id LIMIT ? OFFSET ?"
    return _rows(conn.execute(sql, [*args, limit, offset]))


def open_trips(conn: sqlite3.Connection) -> list[Row]:
    """Every trip still in transit (ticks are fed for their trackers)."""
    return _rows(conn.execute("SELECT * FROM trips WHERE status='in_transit' ORDER BY trip_id"))


def open_trip_for_tracker(conn: sqlite3.Connection, tracker_id: str) -> Row | None:
    """The trip in transit with this tracker, or None."""
    found = _rows(conn.execute("SELECT * FROM trips WHERE tracker_id=? AND status='in_transit' "
                               "ORDER BY departed_ms DESC LIMIT 1", (tracker_id,)))
    return found[0] if found else None


def events(conn: sqlite3.Connection, trip_id: str) -> list[Row]:
    """A trip's events in log order."""
    return _rows(conn.execute("SELECT * FROM trip_events WHERE trip_id=? ORDER BY idx",
                              (trip_id,)))


def trip_alerts(conn: sqlite3.Connection, trip_id: str) -> list[Row]:
    """Alerts whose subject is the trip (trip rules set it to the trip id, or trip/detail)."""
    return _rows(conn.execute(
        "SELECT * FROM alerts WHERE subject=? OR subject LIKE ? ESCAPE '\\' ORDER BY id",
        (trip_id, trip_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%")))


def all_trips(conn: sqlite3.Connection) -> list[Row]:
    """Every trip (the audit compares them all)."""
    return _rows(conn.execute("SELECT * FROM trips ORDER BY trip_id"))


def all_events(conn: sqlite3.Connection) -> list[Row]:
    """Every trip event (the audit compares them all)."""
    return _rows(conn.execute("SELECT * FROM trip_events ORDER BY idx"))


def weighing(conn: sqlite3.Connection, device_id: str, seq: int) -> Row | None:
    """The departure weighing a trip names (device, seq, plate, weights, times), or None."""
    found = _rows(conn.execute(
        "SELECT device_id, seq, plate, gross_kg, tare_kg, net_kg, device_ts, received_ms "
        "FROM weighings WHERE device_id=? AND seq=?", (device_id, seq)))
    return found[0] if found else None
