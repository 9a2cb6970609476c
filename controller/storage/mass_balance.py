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
    out: list[Row] = []
    # only the weighings inside the lot's own unloading spells (by the device_ts index),
    # then the full rule: another lot that started unloading later takes the weighing
    for start, end in conn.execute(
            "SELECT e.time_ms, (SELECT MIN(n.time_ms) FROM lot_events n WHERE "
            "n.lot_id=e.lot_id AND n.idx>e.idx) FROM lot_events e WHERE e.lot_id=? AND "
            "e.status='unloading' ORDER BY e.idx", [lot_id]).fetchall():
        out += _rows(conn.execute(
            "SELECT w.device_id, w.seq, w.net_kg, w.division_kg, w.device_ts, w.flags_json "
            f"FROM weighings w WHERE w.device_ts>=? AND w.device_ts<? AND w.device_id IN "
            f"({marks}) AND {_UNLOADING_LOT}=? ORDER BY w.device_ts, w.device_id, w.seq",
            [start, 2**62 if end is None else end, *sorted(devices), lot_id]))
    return out


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
    """The lot's rail cars that passed the rail reader: each car of a train manifest
    (``train_cars.lot``, train not cancelled) matched on the train's passage and weighed in
    motion (``passage_cars.weight_kg``), with the reader's device and the passage's start.
    Empty while the rail tables do not exist."""
    if not all(_has(conn, t) for t in ("trains", "train_cars", "passage_cars")):
        return []
    return _rows(conn.execute(
        "SELECT tc.lot AS lot_id, pc.weight_kg, t.passage_device AS device_id, "
        "pc.started_ts AS device_ts, tc.initial || tc.number AS car_id, tc.train_id "
        "FROM train_cars tc JOIN trains t ON t.train_id = tc.train_id "
        "JOIN passage_cars pc ON pc.device_id = t.passage_device AND pc.seq = t.passage_seq "
        "AND pc.role = 'car' AND pc.initial = tc.initial AND pc.number = tc.number "
        "WHERE tc.lot = ? AND t.status != 'cancelled' AND pc.weight_kg IS NOT NULL "
        "ORDER BY pc.started_ts, tc.train_id, tc.idx", [lot_id]))


def lots_of_passage(conn: sqlite3.Connection, device_id: str, seq: int) -> list[str]:
    """The lots on the train a rail reader's passage was matched to (empty when none)."""
    if not all(_has(conn, t) for t in ("trains", "train_cars")):
        return []
    return [str(r[0]) for r in conn.execute(
        "SELECT DISTINCT tc.lot FROM train_cars tc JOIN trains t ON t.train_id = tc.train_id "
        "WHERE t.passage_device=? AND t.passage_seq=? AND tc.lot IS NOT NULL",
        [device_id, seq])]


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
