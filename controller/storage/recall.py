"""Reads for a lot's recall list (controller/recall.py): the truck trips and rail cars that
carried given lots (cars through the trains' manifests), and the lot's row.

Tolerant of a store without the rail or lots tables (a missing table reads as no row), so
the recall list works where they are not made; any other SQL error is raised, never read
as "no car".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]


def _rows(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Row]:
    try:
        cur = conn.execute(sql, list(args))
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # the rail or lots code has not made it here yet
            return []
        raise  # a column renamed under us must not shorten a recall list silently
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def trips_of_lots(conn: sqlite3.Connection, lots: Sequence[str]) -> list[Row]:
    """Trips (departed, arrived or cancelled) that carried any of ``lots``, by departure."""
    if not lots:
        return []
    return _rows(conn, "SELECT trip_id, lot, plate, destination, departed_ms, net_kg, status, "
                 "arrived_ts, closed_ms FROM trips WHERE lot IN "
                 f"({_marks(len(lots))}) ORDER BY departed_ms, trip_id", lots)


def cars_of_lots(conn: sqlite3.Connection, lots: Sequence[str]) -> list[Row]:
    """Rail cars whose train manifest (``train_cars``) loaded any of ``lots``, trains not
    cancelled, with the weight the rail reader measured on the matched passage (None when
    not matched or not weighed): [] while the rail tables do not exist."""
    if not lots:
        return []
    return _rows(conn, "SELECT tc.train_id, tc.idx, tc.initial, tc.number, tc.lot, "
                 "tc.destination, tc.declared_kg, t.status AS train_status, t.released_ms, "
                 "pc.started_ts AS passed_ts, pc.weight_kg AS measured_kg "
                 "FROM train_cars tc JOIN trains t ON t.train_id = tc.train_id "
                 "LEFT JOIN passage_cars pc ON pc.device_id = t.passage_device "
                 "AND pc.seq = t.passage_seq AND pc.role = 'car' AND pc.initial = tc.initial "
                 "AND pc.number = tc.number "
                 f"WHERE tc.lot IN ({_marks(len(lots))}) AND t.status != 'cancelled' "
                 "ORDER BY coalesce(t.released_ms, pc.started_ts, t.created_ms), tc.train_id, "
                 "tc.idx", lots)


def lot(conn: sqlite3.Connection, lot_id: str) -> Row | None:
    """The ``lots`` row of ``lot_id`` (None: no such lot, or no lots table yet)."""
    found = _rows(conn, "SELECT * FROM lots WHERE lot_id=?", [lot_id])
    return found[0] if found else None
