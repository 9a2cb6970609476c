"""Ore blends: the rows projected from ``blend`` decisions (controller/blends.py) and their
reads. A blend is a new lot made of input lots; ``blend_inputs`` keeps each input's kg and
its fraction of the blend, which the recall list and the trace follow."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

BLEND_COLUMNS = ("blend_lot", "commodity", "origin", "origins_json", "total_kg", "reason",
                 "actor", "created_ms")
INPUT_COLUMNS = ("blend_lot", "input_lot", "kg", "fraction")

Row = dict[str, Any]


def _rows(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def put_blend(conn: sqlite3.Connection, row: Mapping[str, Any],
              inputs: Iterable[Mapping[str, Any]]) -> None:
    """Insert one blend and its inputs (inside the caller's transaction)."""
    conn.execute(f"INSERT INTO blends ({', '.join(BLEND_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(BLEND_COLUMNS))})", [row[c] for c in BLEND_COLUMNS])
    conn.executemany(f"INSERT INTO blend_inputs ({', '.join(INPUT_COLUMNS)}) VALUES "
                     f"({', '.join('?' * len(INPUT_COLUMNS))})",
                     [[i[c] for c in INPUT_COLUMNS] for i in inputs])


def get_blend(conn: sqlite3.Connection, blend_lot: str) -> Row | None:
    """One blend, or None."""
    found = _rows(conn.execute("SELECT * FROM blends WHERE blend_lot=?", (blend_lot,)))
    return found[0] if found else None


def inputs(conn: sqlite3.Connection, blend_lot: str) -> list[Row]:
    """The direct inputs of a blend, largest first."""
    return _rows(conn.execute("SELECT * FROM blend_inputs WHERE blend_lot=? "
                              "ORDER BY kg DESC, input_lot", (blend_lot,)))


def containing(conn: sqlite3.Connection, lot: str) -> list[Row]:
    """The input rows naming ``lot``: the blends it went into directly."""
    return _rows(conn.execute("SELECT * FROM blend_inputs WHERE input_lot=? "
                              "ORDER BY blend_lot", (lot,)))


def all_blends(conn: sqlite3.Connection) -> list[Row]:
    """Every blend (the audit compares them all)."""
    return _rows(conn.execute("SELECT * FROM blends ORDER BY blend_lot"))


def all_inputs(conn: sqlite3.Connection) -> list[Row]:
    """Every blend input, keyed "blend_lot|input_lot" (the audit compares them all)."""
    return _rows(conn.execute("SELECT blend_lot || '|' || input_lot AS key, * FROM "
                              "blend_inputs ORDER BY blend_lot, input_lot"))

