"""Transfer orders: the rows projected from ``order`` decisions (controller/trips.py writes
them through controller/projections/orders.py), and their reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

# the orders table's columns (schema.py); the projection makes rows with exactly these
ORDER_COLUMNS = ("order_id", "lot", "plate", "tracker_id", "destination", "corridor",
                 "window_start_ms", "window_end_ms", "expected_net_kg", "status", "created_ms",
                 "created_by", "updated_ms", "cancel_reason")

Row = dict[str, Any]


def _rows(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def put_order(conn: sqlite3.Connection, row: Mapping[str, Any]) -> None:
    """Insert or replace one order row (inside the caller's transaction)."""
    conn.execute(f"INSERT OR REPLACE INTO orders ({', '.join(ORDER_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(ORDER_COLUMNS))})", [row[c] for c in ORDER_COLUMNS])


def get_order(conn: sqlite3.Connection, order_id: str) -> Row | None:
    """One order, or None."""
    found = _rows(conn.execute("SELECT * FROM orders WHERE order_id=?", (order_id,)))
    return found[0] if found else None


def list_orders(conn: sqlite3.Connection, *, status: str | None = None,
                plate: str | None = None, lot: str | None = None, limit: int = 100,
                offset: int = 0) -> list[Row]:
    """Orders, newest first, filtered by status, plate and lot."""
    sql, args = "SELECT * FROM orders WHERE 1=1", []
    for col, value in (("status", status), ("plate", plate), ("lot", lot)):
        if value is not None:
            sql += f" AND {col}=?"
            args.append(value)
    sql += " ORDER BY created_ms DESC, order_id LIMIT ? OFFSET ?"
    return _rows(conn.execute(sql, [*args, limit, offset]))


def open_order_for_plate(conn: sqlite3.Connection, plate: str, at_ms: int) -> Row | None:
    """The open order of a plate whose window holds ``at_ms`` (the earliest window first),
    or None: what the out-gate asks when a truck is weighed out."""
    found = _rows(conn.execute(
        "SELECT * FROM orders WHERE plate=? AND status='open' AND window_start_ms<=? AND "
        "window_end_ms>=? ORDER BY window_start_ms, order_id LIMIT 1", (plate, at_ms, at_ms)))
    return found[0] if found else None


def all_orders(conn: sqlite3.Connection) -> list[Row]:
    """Every order (the audit compares them all)."""
    return _rows(conn.execute("SELECT * FROM orders ORDER BY order_id"))
