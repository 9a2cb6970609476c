"""The cheap reads behind the dashboard's event stream (controller/dashboard/changes.py).

One query per topic, each a few integer aggregates that move whenever a row of that topic is
added or changes state: small tables, or ``max(rowid)`` on the big one. Each table exists
from the schema's first versions on.
"""

from __future__ import annotations

import sqlite3


def _ints(conn: sqlite3.Connection, sql: str) -> tuple[int, ...]:
    """The one row of ``sql`` as integers (NULL read as 0)."""
    row = conn.execute(sql).fetchone()
    return tuple(int(v or 0) for v in row)


def alert_mark(conn: sqlite3.Connection) -> tuple[int, ...]:
    """Alerts: count, newest id, latest ack, latest clear, how many are not cleared."""
    return _ints(conn, "SELECT count(*), coalesce(max(id), 0), coalesce(max(acked_ms), 0), "
                       "coalesce(max(cleared_ms), 0), sum(cleared_ms IS NULL) FROM alerts")


def device_mark(conn: sqlite3.Connection) -> tuple[int, ...]:
    """Devices: count, latest seen, latest health, decommissioned, online."""
    return _ints(conn, "SELECT count(*), coalesce(max(last_seen_ms), 0), "
                       "coalesce(max(health_ms), 0), "
                       "coalesce(sum(decommissioned_ms IS NOT NULL), 0), "
                       "coalesce(sum(status = 'online'), 0) FROM devices")


def trip_mark(conn: sqlite3.Connection) -> tuple[int, ...]:
    """Trips: count, latest departure, latest close, how many are in transit."""
    return _ints(conn, "SELECT count(*), coalesce(max(departed_ms), 0), "
                       "coalesce(max(closed_ms), 0), "
                       "coalesce(sum(status = 'in_transit'), 0) FROM trips")


def position_mark(conn: sqlite3.Connection) -> tuple[int, ...]:
    """Positions: the newest rowid."""
    return _ints(conn, "SELECT coalesce(max(rowid), 0) FROM positions")


def gate_mark(conn: sqlite3.Connection) -> tuple[int, ...]:
    """Gate decisions: count and latest decision time."""
    return _ints(conn, "SELECT count(*), coalesce(max(decided_ms), 0) FROM gate_decisions")
