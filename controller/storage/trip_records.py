"""Reads for a trip record (controller/office_feed.py): the trip, its order, its events, the
departure weighing with its ledger leaf, a summary of the route so far, the latest checkpoint.

Tolerant of a store without the trips tables (a missing table reads as no row), so the feed
can be tested and run before the trips code fills them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any


def _one(conn: sqlite3.Connection, sql: str, args: list[Any]) -> dict[str, Any] | None:
    try:
        cur = conn.execute(sql, args)
    except sqlite3.OperationalError:  # no such table: the trips code has not made it yet
        return None
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row,
                                             strict=True))


def trip(conn: sqlite3.Connection, trip_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM trips WHERE trip_id=?", [trip_id])


def order(conn: sqlite3.Connection, order_id: str) -> dict[str, Any] | None:
    return _one(conn, "SELECT * FROM orders WHERE order_id=?", [order_id])


def events(conn: sqlite3.Connection, trip_id: str) -> list[dict[str, Any]]:
    """The trip's events in ledger order, detail decoded."""
    try:
        rows = conn.execute("SELECT idx, event, time_ms, actor, detail_json FROM trip_events "
                            "WHERE trip_id=? ORDER BY idx", [trip_id]).fetchall()
    except sqlite3.OperationalError:
        return []
    return [{"idx": r[0], "event": r[1], "time_ms": r[2], "actor": r[3],
             "detail": json.loads(r[4]) if r[4] else {}} for r in rows]


def weighing(conn: sqlite3.Connection, device_id: str, seq: int) -> dict[str, Any] | None:
    """A weighing with the ledger leaf index and leaf hash of the message that carried it."""
    row = _one(conn, "SELECT device_id, seq, plate, gross_kg, tare_kg, net_kg, device_ts, "
               "received_ms FROM weighings WHERE device_id=? AND seq=?", [device_id, seq])
    if row is None:
        return None
    leaf = conn.execute("SELECT idx, leaf_hash FROM ledger_entries WHERE device_id=? AND "
                        "seq=? AND subkind='evt'", [device_id, seq]).fetchone()
    row["ledger_index"] = None if leaf is None else int(leaf[0])
    row["entry_hash"] = None if leaf is None else bytes(leaf[1]).hex()
    return row


def route(conn: sqlite3.Connection, device_id: str, since_ts: int) -> dict[str, Any]:
    """Fixes of ``device_id`` from ``since_ts`` on: how many, the first and the last
    ([ts_ms, lat_e6, lon_e6])."""
    try:
        n, first_ts, last_ts = conn.execute(
            "SELECT count(*), min(ts_ms), max(ts_ms) FROM positions WHERE device_id=? AND "
            "ts_ms>=?", [device_id, since_ts]).fetchone()
    except sqlite3.OperationalError:
        return {"fixes": 0, "first": None, "last": None}

    def at(ts: int | None) -> list[int] | None:
        if ts is None:
            return None
        r = conn.execute("SELECT ts_ms, lat_e6, lon_e6 FROM positions WHERE device_id=? AND "
                         "ts_ms=? LIMIT 1", [device_id, ts]).fetchone()
        return None if r is None else [int(r[0]), int(r[1]), int(r[2])]

    return {"fixes": int(n), "first": at(first_ts), "last": at(last_ts)}


def latest_checkpoint(conn: sqlite3.Connection) -> tuple[int, bytes, int] | None:
    """(size, root, created_ms) of the latest signed checkpoint."""
    row = conn.execute("SELECT size, root, created_ms FROM ledger_checkpoints "
                       "ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]), int(row[2]))


def origin(conn: sqlite3.Connection) -> str | None:
    """The ledger's origin (``portwatch/<site>``), once it has one."""
    row = conn.execute("SELECT value FROM ledger_meta WHERE name='origin'").fetchone()
    return None if row is None else str(row[0])
