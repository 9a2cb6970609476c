"""SQL of the rail yard: train manifests (``trains``, ``train_cars``) and passages
(``passage_cars`` and the ``passages`` view, projected from ``passage`` events)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

TRAIN_COLUMNS = ("train_id", "reader", "direction", "status", "note", "actor", "created_ms",
                 "updated_ms", "passage_device", "passage_seq", "released_ms", "released_by")
CAR_COLUMNS = ("train_id", "idx", "initial", "number", "lot", "destination", "declared_kg")


def _dicts(cur: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def get_train(conn: sqlite3.Connection, train_id: str) -> dict[str, Any] | None:
    """A manifest's ``trains`` row, or None."""
    rows = _dicts(conn.execute("SELECT * FROM trains WHERE train_id=?", (train_id,)))
    return rows[0] if rows else None


def train_cars(conn: sqlite3.Connection, train_id: str) -> list[dict[str, Any]]:
    """A manifest's cars in train order."""
    return _dicts(conn.execute("SELECT * FROM train_cars WHERE train_id=? ORDER BY idx",
                               (train_id,)))


def put_train(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    """Insert or replace a ``trains`` row."""
    conn.execute(f"INSERT OR REPLACE INTO trains ({', '.join(TRAIN_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(TRAIN_COLUMNS))})",
                 tuple(row.get(c) for c in TRAIN_COLUMNS))


def insert_cars(conn: sqlite3.Connection, train_id: str,
                cars: Sequence[dict[str, Any]]) -> None:
    """A manifest's cars, in order."""
    conn.executemany(f"INSERT INTO train_cars ({', '.join(CAR_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(CAR_COLUMNS))})",
                     [(train_id, i, c["initial"], c["number"], c.get("lot"),
                       c.get("destination"), c.get("declared_kg")) for i, c in enumerate(cars)])


def list_trains(conn: sqlite3.Connection, *, status: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Manifests newest first, each with its car count."""
    where, args = ("WHERE t.status=?", [status]) if status else ("", [])
    return _dicts(conn.execute(
        f"SELECT t.*, (SELECT count(*) FROM train_cars c WHERE c.train_id=t.train_id) AS cars "
        f"FROM trains t {where} ORDER BY t.created_ms DESC, t.train_id LIMIT ?",
        (*args, limit)))


def open_train(conn: sqlite3.Connection, reader: str, direction: str) -> dict[str, Any] | None:
    """The oldest open manifest of this reader and direction (trains pass in the order
    they were declared), or None."""
    rows = _dicts(conn.execute(
        "SELECT * FROM trains WHERE reader=? AND direction=? AND status='open' "
        "ORDER BY created_ms, train_id LIMIT 1", (reader, direction)))
    return rows[0] if rows else None


def passage(conn: sqlite3.Connection, device_id: str, seq: int) -> dict[str, Any] | None:
    """One row of the ``passages`` view, or None."""
    rows = _dicts(conn.execute("SELECT * FROM passages WHERE device_id=? AND seq=?",
                               (device_id, seq)))
    return rows[0] if rows else None


def passage_rows(conn: sqlite3.Connection, device_id: str, seq: int) -> list[dict[str, Any]]:
    """A passage's tag reads in order."""
    return _dicts(conn.execute(
        "SELECT idx, role, car_seq, initial, number, side, length_dm, axles, weight_kg, "
        "raw_hex FROM passage_cars WHERE device_id=? AND seq=? ORDER BY idx",
        (device_id, seq)))


def list_passages(conn: sqlite3.Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """Passages newest first."""
    return _dicts(conn.execute("SELECT * FROM passages ORDER BY started_ts DESC LIMIT ?",
                               (limit,)))


def all_trains(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every ``trains`` row (the audit)."""
    return _dicts(conn.execute("SELECT * FROM trains ORDER BY train_id"))


def all_train_cars(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every ``train_cars`` row (the audit)."""
    return _dicts(conn.execute("SELECT * FROM train_cars ORDER BY train_id, idx"))


def earlier_passage(conn: sqlite3.Connection, device_id: str, seq: int, started_ts: int,
                    train: str | None) -> int | None:
    """The seq of an earlier passage of this reader with the same first-axle time and
    reader train id (the same train sent again), or None."""
    row = conn.execute(
        "SELECT min(seq) FROM passage_cars WHERE device_id=? AND seq<? AND started_ts=? "
        "AND train IS ?", (device_id, seq, started_ts, train)).fetchone()
    return None if row is None or row[0] is None else int(row[0])
