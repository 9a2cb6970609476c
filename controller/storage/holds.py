"""Lot holds' rows: a lot is on hold while it has a row with ``released_ms`` NULL.

At most one active hold per lot and kind (a unique partial index): placing a second of
the same kind is a ``sqlite3.IntegrityError`` the caller turns into a clear refusal.
``hold_approvals`` keeps the officers who approved a four-eyes release.
"""

from __future__ import annotations

import sqlite3
from typing import Any

_COLUMNS = "id, lot, kind, reason, actor, held_ms, released_ms, released_by, release_reason"


def _dict(row: Any) -> dict[str, Any]:
    return dict(zip(_COLUMNS.split(", "), row, strict=True))


def active_holds(conn: sqlite3.Connection, lot: str) -> list[dict[str, Any]]:
    """The holds keeping ``lot`` back now (oldest first); empty when it may go."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM holds WHERE lot=? AND released_ms IS NULL "
                        "ORDER BY id", [lot]).fetchall()
    return [_dict(r) for r in rows]


def active_hold(conn: sqlite3.Connection, lot: str,
                kind: str | None = None) -> dict[str, Any] | None:
    """The (oldest) hold of ``kind`` (any kind: None) keeping ``lot`` back, or None."""
    for h in active_holds(conn, lot):
        if kind is None or h["kind"] == kind:
            return h
    return None


def insert_hold(conn: sqlite3.Connection, lot: str, reason: str, actor: str,
                held_ms: int, kind: str = "manual") -> int:
    """A new active hold (inside the caller's transaction); its id."""
    cur = conn.execute("INSERT INTO holds (lot, kind, reason, actor, held_ms) "
                       "VALUES (?,?,?,?,?)", [lot, kind, reason, actor, held_ms])
    assert cur.lastrowid is not None
    return int(cur.lastrowid)


def release(conn: sqlite3.Connection, hold_id: int, released_by: str, release_reason: str,
            released_ms: int) -> None:
    """Close an active hold (inside the caller's transaction)."""
    conn.execute("UPDATE holds SET released_ms=?, released_by=?, release_reason=? "
                 "WHERE id=? AND released_ms IS NULL",
                 [released_ms, released_by, release_reason, hold_id])


def get_hold(conn: sqlite3.Connection, hold_id: int) -> dict[str, Any] | None:
    """One hold by id, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM holds WHERE id=?", [hold_id]).fetchone()
    return None if row is None else _dict(row)


def list_holds(conn: sqlite3.Connection, *, active: bool | None = True, lot: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Holds, newest first: active ones (``active=True``), released ones (False) or all."""
    where, args = [], []
    if active is not None:
        where.append("released_ms IS NULL" if active else "released_ms IS NOT NULL")
    if lot is not None:
        where.append("lot=?")
        args.append(lot)
    sql = f"SELECT {_COLUMNS} FROM holds"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
    return [_dict(r) for r in rows]


def all_holds(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every hold, by id (the audit compares them all)."""
    return [_dict(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM holds ORDER BY id")]


def add_approval(conn: sqlite3.Connection, hold_id: int, officer: str, reason: str,
                 approved_ms: int) -> None:
    """One officer's approval of a hold's release (inside the caller's transaction)."""
    conn.execute("INSERT INTO hold_approvals (hold_id, officer, reason, approved_ms) "
                 "VALUES (?,?,?,?)", [hold_id, officer, reason, approved_ms])


def approvals(conn: sqlite3.Connection, hold_id: int) -> list[dict[str, Any]]:
    """The approvals of a hold's release, oldest first."""
    rows = conn.execute("SELECT hold_id, officer, reason, approved_ms FROM hold_approvals "
                        "WHERE hold_id=? ORDER BY approved_ms, officer", [hold_id]).fetchall()
    return [dict(zip(("hold_id", "officer", "reason", "approved_ms"), r, strict=True))
            for r in rows]


def all_approvals(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every approval (the audit compares them all)."""
    rows = conn.execute("SELECT hold_id, officer, reason, approved_ms FROM hold_approvals "
                        "ORDER BY hold_id, officer").fetchall()
    return [dict(zip(("hold_id", "officer", "reason", "approved_ms"), r, strict=True))
            for r in rows]
