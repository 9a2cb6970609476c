"""The remote witnesses the controller pushes checkpoints to (table ledger_witnesses), and
what it needs to know about their cosignatures."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WitnessRow:
    name: str
    vkey: str
    url: str
    added_ms: int


def add(conn: sqlite3.Connection, name: str, vkey: str, url: str, now_ms: int) -> None:
    """Insert or replace one witness (inside the caller's transaction)."""
    conn.execute("INSERT OR REPLACE INTO ledger_witnesses (name, vkey, url, added_ms) "
                 "VALUES (?,?,?,?)", (name, vkey, url, now_ms))


def remove(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM ledger_witnesses WHERE name=?", (name,)).rowcount > 0


def all_witnesses(conn: sqlite3.Connection) -> list[WitnessRow]:
    return [WitnessRow(str(r[0]), str(r[1]), str(r[2]), int(r[3] or 0)) for r in conn.execute(
        "SELECT name, vkey, url, added_ms FROM ledger_witnesses ORDER BY name")]


def cosigned_size(conn: sqlite3.Connection, vkey: str) -> int | None:
    """The largest checkpoint size this witness key has cosigned for us (None: none)."""
    row = conn.execute("SELECT max(c.size) FROM ledger_cosignatures s JOIN ledger_checkpoints c "
                       "ON c.id = s.checkpoint_id WHERE s.vkey=?", (vkey,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def first_uncosigned(conn: sqlite3.Connection, vkey: str) -> tuple[int, int, int] | None:
    """(id, size, created_ms) of the oldest checkpoint larger than every one this witness
    cosigned: the one that has been waiting longest for it (None: it is up to date)."""
    done = cosigned_size(conn, vkey)
    row = conn.execute("SELECT id, size, created_ms FROM ledger_checkpoints WHERE size > ? "
                       "ORDER BY size, id LIMIT 1", (-1 if done is None else done,)).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), int(row[2] or 0))
