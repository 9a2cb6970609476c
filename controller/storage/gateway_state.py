"""The JT/T 808 gateway's own SQLite file: its boot counter, each terminal's next seq,
last acknowledged seq and alarm bits, the outbox of sealed events not yet acknowledged by
the controller, and the digests of reports already turned into events.

Not the controller's store: the gateway is a separate process and its outbox must
survive it, as an agent's outbox on flash survives a power cut. ``synchronous=FULL``:
a committed event is on disk before the terminal gets its answer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from controller.storage.database import transaction

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS terminals (device_id TEXT PRIMARY KEY, "
    "next_seq INTEGER NOT NULL, acked_seq INTEGER NOT NULL DEFAULT 0, alarm_bits INTEGER)",
    "CREATE TABLE IF NOT EXISTS outbox (device_id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "wire BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (device_id, seq))",
    "CREATE TABLE IF NOT EXISTS seen (device_id TEXT NOT NULL, digest TEXT NOT NULL, "
    "last_seq INTEGER NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (device_id, digest))",
)


def open_state(path: Path) -> sqlite3.Connection:
    """Open (creating if missing) the gateway's state file, mode 0600 (it holds sealed
    events, not secrets, but nobody else needs it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.touch(mode=0o600)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    for statement in _SCHEMA:
        conn.execute(statement)
    return conn


def next_boot(conn: sqlite3.Connection) -> int:
    """Count one more start of the gateway and return the new boot number (from 1)."""
    with transaction(conn):
        row = conn.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
        boot = (int(row[0]) if row else 0) + 1
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('boot', ?)", [boot])
    return boot


def terminal(conn: sqlite3.Connection, device_id: str) -> tuple[int, int, int | None] | None:
    """(next_seq, acked_seq, alarm_bits) of a terminal, or None when never seen."""
    row = conn.execute("SELECT next_seq, acked_seq, alarm_bits FROM terminals "
                       "WHERE device_id=?", [device_id]).fetchone()
    if row is None:
        return None
    return int(row[0]), int(row[1]), None if row[2] is None else int(row[2])


def add_terminal(conn: sqlite3.Connection, device_id: str, next_seq: int) -> None:
    """Remember a terminal first seen, its seqs starting at ``next_seq``."""
    conn.execute("INSERT OR IGNORE INTO terminals (device_id, next_seq, acked_seq) "
                 "VALUES (?, ?, ?)", [device_id, next_seq, next_seq - 1])


def seen_seq(conn: sqlite3.Connection, device_id: str, digest: str) -> int | None:
    """The last seq of the events made from a report with this digest, if any."""
    row = conn.execute("SELECT last_seq FROM seen WHERE device_id=? AND digest=?",
                       [device_id, digest]).fetchone()
    return None if row is None else int(row[0])


def store_events(conn: sqlite3.Connection, device_id: str, first_seq: int,
                 wires: Iterable[bytes], *, alarm_bits: int | None, digest: str,
                 now_ms: int) -> int:
    """Put sealed events (seqs from ``first_seq``) into the outbox, move the terminal's
    next seq past them, keep its alarm bits and the report's digest: one transaction.
    Returns the last seq used."""
    seq = first_seq - 1
    with transaction(conn):
        for seq, wire in enumerate(wires, start=first_seq):
            conn.execute("INSERT INTO outbox (device_id, seq, wire, created_ms) "
                         "VALUES (?, ?, ?, ?)", [device_id, seq, wire, now_ms])
        conn.execute("UPDATE terminals SET next_seq=?, alarm_bits=? WHERE device_id=?",
                     [seq + 1, alarm_bits, device_id])
        conn.execute("INSERT OR REPLACE INTO seen (device_id, digest, last_seq, created_ms) "
                     "VALUES (?, ?, ?, ?)", [device_id, digest, seq, now_ms])
    return seq


def acknowledge(conn: sqlite3.Connection, device_id: str, upto: int) -> int:
    """Drop the outbox's events up to ``upto`` (the controller committed them); return
    how many were dropped."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM outbox WHERE device_id=? AND seq<=?", [device_id, upto])
        conn.execute("UPDATE terminals SET acked_seq=max(acked_seq, ?) WHERE device_id=?",
                     [upto, device_id])
    return cur.rowcount


def pending(conn: sqlite3.Connection, device_id: str | None = None, after: int = 0,
            upto: int | None = None, limit: int = -1) -> list[tuple[str, int, bytes]]:
    """(device_id, seq, wire) of the outbox, in seq order per device (one device's from
    ``after`` + 1 to ``upto`` when ``device_id`` is given); at most ``limit`` (-1: all)."""
    if device_id is None:
        rows = conn.execute("SELECT device_id, seq, wire FROM outbox ORDER BY device_id, seq "
                            "LIMIT ?", [limit])
    else:
        rows = conn.execute("SELECT device_id, seq, wire FROM outbox WHERE device_id=? AND "
                            "seq>? AND seq<=? ORDER BY seq LIMIT ?",
                            [device_id, after, 2**62 if upto is None else upto, limit])
    return [(str(r[0]), int(r[1]), bytes(r[2])) for r in rows]


def pending_devices(conn: sqlite3.Connection) -> list[str]:
    """The devices with events in the outbox."""
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT device_id FROM outbox")]


def backlog(conn: sqlite3.Connection) -> int:
    """How many events wait for the controller's ack."""
    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def forget_seen(conn: sqlite3.Connection, before_ms: int) -> None:
    """Drop report digests older than ``before_ms`` (a terminal resends within minutes)."""
    conn.execute("DELETE FROM seen WHERE created_ms<?", [before_ms])
