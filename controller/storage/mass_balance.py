"""The figures a lot's mass balance is made of, read from the store (controller/mass_balance.py
does the arithmetic): unloading weighings, out-gate departures, rail cars, draft surveys."""

from __future__ import annotations

import sqlite3
from typing import Any

Row = dict[str, Any]

# the lot unloading at a weighing's device time, as controller.storage.lots.unloading_at
# finds it for one time, correlated here so one query ties every weighing at once
_UNLOADING_LOT = (
    "(SELECT e.lot_id FROM lot_events e WHERE e.status='unloading' AND e.time_ms<=w.device_ts "
    "AND NOT EXISTS (SELECT 1 FROM lot_events n WHERE n.lot_id=e.lot_id AND n.idx>e.idx AND "
    "n.time_ms<=w.device_ts) ORDER BY e.time_ms DESC, e.idx DESC LIMIT 1)")


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                        [table]).fetchone() is not None


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _rows(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def unloading_weighings(conn: sqlite3.Connection, lot_id: str,
                        devices: frozenset[str]) -> list[Row]:
    """Weighings of the unloading scales ``devices`` made while ``lot_id`` was unloading."""
    if not devices or not _has(conn, "lot_events"):
        return []
    marks = ",".join("?" * len(devices))
    return _rows(conn.execute(
        "SELECT w.device_id, w.seq, w.net_kg, w.division_kg, w.device_ts, w.flags_json "
        f"FROM weighings w WHERE w.device_id IN ({marks}) AND {_UNLOADING_LOT}=? "
        "ORDER BY w.device_ts, w.device_id, w.seq", [*sorted(devices), lot_id]))


def lot_of_unloading_weighing(conn: sqlite3.Connection, device_ts: int) -> str | None:
    """The lot unloading at ``device_ts`` (None without lots or when none was)."""
    if not _has(conn, "lot_events"):
        return None
    row = conn.execute(f"SELECT {_UNLOADING_LOT.replace('w.device_ts', '?')}",
                       [device_ts] * 2).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def truck_departures(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """The lot's trips (orders of the lot that left through the out-gate) with the net and
    division of their departure weighing."""
    if not _has(conn, "trips"):
        return []
    return _rows(conn.execute(
        "SELECT t.trip_id, t.gate_device, t.weighing_seq, t.net_kg, t.departed_ms, "
        "w.division_kg, w.device_ts, w.flags_json FROM trips t LEFT JOIN weighings w ON "
        "w.device_id=t.gate_device AND w.seq=t.weighing_seq WHERE t.lot=? "
        "ORDER BY t.departed_ms, t.trip_id", [lot_id]))


def rail_cars(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """The lot's rail cars with their in-motion weight (``passage_cars``: lot_id, weight_kg;
    the reader's device and time when the table has them). Empty without the table."""
    if not _has(conn, "passage_cars"):
        return []
    cols = _columns(conn, "passage_cars")
    if not {"lot_id", "weight_kg"} <= cols:
        return []
    extra = [c for c in ("device_id", "device_ts", "time_ms", "car_id") if c in cols]
    return _rows(conn.execute(
        f"SELECT {', '.join(['lot_id', 'weight_kg', *extra])} FROM passage_cars "
        "WHERE lot_id=? AND weight_kg IS NOT NULL", [lot_id]))


def insert_draft_survey(conn: sqlite3.Connection, lot_id: str, kg: int, surveyor: str,
                        actor: str, time_ms: int) -> int:
    """A draft survey's figure (inside the caller's transaction); its id."""
    cur = conn.execute("INSERT INTO draft_surveys (lot_id, kg, surveyor, actor, time_ms) "
                       "VALUES (?,?,?,?,?)", [lot_id, kg, surveyor, actor, time_ms])
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def latest_draft_survey(conn: sqlite3.Connection, lot_id: str) -> Row | None:
    """The lot's last draft survey (a later survey corrects an earlier one), or None."""
    found = _rows(conn.execute("SELECT id, lot_id, kg, surveyor, actor, time_ms FROM "
                               "draft_surveys WHERE lot_id=? ORDER BY id DESC LIMIT 1",
                               [lot_id]))
    return found[0] if found else None


def all_draft_surveys(conn: sqlite3.Connection) -> list[Row]:
    """Every draft survey (the audit compares them all)."""
    return _rows(conn.execute("SELECT id, lot_id, kg, surveyor, actor, time_ms FROM "
                              "draft_surveys ORDER BY id"))


def lots_of_departure(conn: sqlite3.Connection, device_id: str, seq: int) -> list[str]:
    """The lot of the trip a departure weighing made (empty when it made none)."""
    if not _has(conn, "trips"):
        return []
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT lot FROM trips WHERE gate_device=? AND weighing_seq=? AND lot IS NOT "
        "NULL", [device_id, seq])]
