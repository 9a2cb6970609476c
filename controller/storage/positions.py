"""Trackers' fixes as stored by the ``positions`` projection: reads by device and time.

Writes go through the projection (controller/projections/positions.py) in the ingest's
batch; this module only reads. Times are the device's own (``ts_ms``), so a backlog that
arrived late is read in the order the truck drove it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

TRACK_LIMIT = 20_000  # fixes one track read returns at most (a day at one fix per 5 s)


def fixes_between(conn: sqlite3.Connection, device_id: str, since_ts: int,
                  until_ts: int) -> list[tuple[int, int, int]]:
    """(ts_ms, lat_e6, lon_e6) of a device's fixes with since_ts <= ts_ms <= until_ts,
    ordered by device time (a fix reported twice at one time comes once)."""
    return [(int(t), int(la), int(lo)) for t, la, lo in conn.execute(
        "SELECT ts_ms, min(lat_e6), min(lon_e6) FROM positions WHERE device_id=? AND "
        "ts_ms BETWEEN ? AND ? GROUP BY ts_ms ORDER BY ts_ms", (device_id, since_ts, until_ts))]


def track(conn: sqlite3.Connection, device_id: str, since_ts: int, until_ts: int | None,
          limit: int = TRACK_LIMIT) -> list[dict[str, Any]]:
    """A trip's track: every field of the device's fixes from ``since_ts`` to ``until_ts``
    (None: up to now), by device time, at most ``limit`` (the earliest ones)."""
    cur = conn.execute(
        "SELECT ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, hdop_x10, seq, "
        "received_ms FROM positions WHERE device_id=? AND ts_ms>=? AND ts_ms<=? "
        "ORDER BY ts_ms, seq, idx LIMIT ?",
        (device_id, since_ts, until_ts if until_ts is not None else 2**62, limit))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def latest_fix(conn: sqlite3.Connection, device_id: str) -> dict[str, Any] | None:
    """The device's latest fix by device time, or None."""
    cur = conn.execute("SELECT ts_ms, lat_e6, lon_e6, speed_dkmh, received_ms FROM positions "
                       "WHERE device_id=? ORDER BY ts_ms DESC LIMIT 1", (device_id,))
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))
