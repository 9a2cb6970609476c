"""The ledger's tables and its one append call, inside the caller's SQLite transaction.

``append`` never begins or commits: the ingest writes a record and the ledger entry that
proves it in the same ``BEGIN IMMEDIATE … COMMIT``, so after a crash both are there or
neither is, and the log has no gap. Everything the ledger knows is in these tables (no
in-memory state), so a rolled-back transaction leaves nothing behind.

Tables:
  ledger_entries       idx (leaf index, from 0), kind, subkind (channel or decision kind),
                       device_id, seq, time_ms, entry (canonical bytes), leaf_hash
  ledger_nodes         every complete subtree hash of level >= 1, keyed
                       ``level << 40 | index``: roots and proofs in O(log² n) look-ups,
                       about one small row per entry
  ledger_checkpoints   signed checkpoints (size, root, note, created_ms)
  ledger_cosignatures  witness cosignature lines per checkpoint, with the witness's vkey
  ledger_meta          name/value: the log's origin
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlite_utils

from controller.ledger import entries as entries_mod
from controller.ledger import tree
from controller.ledger.errors import LedgerError

_NODE_SHIFT = 40  # 2**40 leaves per level is more than any port will log


def migrate(db: sqlite_utils.Database) -> None:
    """Create the ledger's tables and indexes when missing (idempotent)."""
    names = set(db.table_names())
    if "ledger_entries" not in names:
        db.table("ledger_entries").create(
            {"idx": int, "kind": str, "subkind": str, "device_id": str, "seq": int,
             "time_ms": int, "entry": bytes, "leaf_hash": bytes},
            pk="idx", not_null={"kind", "entry", "leaf_hash"},
        )
        db.execute("CREATE INDEX ledger_entries_device_seq ON ledger_entries "
                   "(device_id, seq) WHERE device_id IS NOT NULL")
    if "ledger_nodes" not in names:
        db.table("ledger_nodes").create({"id": int, "hash": bytes}, pk="id",
                                        not_null={"hash"})
    if "ledger_checkpoints" not in names:
        db.table("ledger_checkpoints").create(
            {"id": int, "size": int, "root": bytes, "note": str, "created_ms": int},
            pk="id", not_null={"size", "root", "note"},
        )
        db.table("ledger_checkpoints").create_index(["size"])
    if "ledger_cosignatures" not in names:
        db.table("ledger_cosignatures").create(
            {"id": int, "checkpoint_id": int, "witness": str, "vkey": str, "line": str,
             "created_ms": int},
            pk="id", not_null={"checkpoint_id", "vkey", "line"},
        )
        db.table("ledger_cosignatures").create_index(["checkpoint_id", "vkey"], unique=True)
    if "ledger_meta" not in names:
        db.table("ledger_meta").create({"name": str, "value": str}, pk="name")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Join the caller's transaction, or run one of our own (BEGIN IMMEDIATE … COMMIT)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def size(conn: sqlite3.Connection) -> int:
    """Number of entries (the next index)."""
    row = conn.execute("SELECT max(idx) FROM ledger_entries").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def append(conn: sqlite3.Connection, entries: list[bytes]) -> list[int]:
    """Append canonical entries inside the caller's open transaction; return their indexes.

    Raises LedgerError when no transaction is open (the entries would commit apart from
    the records they prove) and EntryFormatError for bytes that are not a canonical entry.
    """
    if not conn.in_transaction:
        raise LedgerError("ledger append must run inside the caller's transaction: "
                          "conn.execute('BEGIN IMMEDIATE') first, or use ledger.transaction()")
    if not entries:
        return []
    start = size(conn)
    rows: list[tuple[Any, ...]] = []
    hashes: list[bytes] = []
    for i, data in enumerate(entries):
        e = entries_mod.decode(data)
        h = tree.leaf_hash(data)
        hashes.append(h)
        if isinstance(e, entries_mod.DeviceMessage):
            rows.append((start + i, e.kind, e.channel, e.device_id, e.seq, e.time_ms, data, h))
        else:
            rows.append((start + i, e.kind, e.decision, None, None, e.time_ms, data, h))
    nodes = tree.new_nodes(SqliteSubtrees(conn), start, hashes)
    conn.executemany("INSERT INTO ledger_entries (idx, kind, subkind, device_id, seq, time_ms, "
                     "entry, leaf_hash) VALUES (?,?,?,?,?,?,?,?)", rows)
    conn.executemany("INSERT INTO ledger_nodes (id, hash) VALUES (?,?)",
                     [((level << _NODE_SHIFT) | index, h) for level, index, h in nodes])
    return list(range(start, start + len(entries)))


def append_decision(conn: sqlite3.Connection, kind: str, actor: str, body: dict[str, Any],
                    now_ms: int) -> int:
    """Append one controller decision (inside the caller's transaction); return its index."""
    entry = entries_mod.decision(kind=kind, actor=actor, time_ms=now_ms, body=body)
    return append(conn, [entry])[0]


class SqliteSubtrees:
    """Complete-subtree hashes read from the ledger tables."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def subtree(self, level: int, index: int) -> bytes:
        if level == 0:
            row = self.conn.execute("SELECT leaf_hash FROM ledger_entries WHERE idx=?",
                                    (index,)).fetchone()
        else:
            row = self.conn.execute("SELECT hash FROM ledger_nodes WHERE id=?",
                                    ((level << _NODE_SHIFT) | index,)).fetchone()
        if row is None:
            raise LedgerError(f"the ledger store lacks subtree (level {level}, index {index}): "
                              "it was altered outside portwatch; export and verify it")
        return bytes(row[0])


def root(conn: sqlite3.Connection, tree_size: int | None = None) -> bytes:
    """Root hash of the first `tree_size` entries (default: all)."""
    n = size(conn) if tree_size is None else tree_size
    _check_size(conn, n)
    return tree.root(SqliteSubtrees(conn), n)


def inclusion_proof(conn: sqlite3.Connection, index: int, tree_size: int) -> list[bytes]:
    _check_size(conn, tree_size)
    if not 0 <= index < tree_size:
        raise LedgerError(f"entry {index} is not in the tree of size {tree_size}")
    return tree.inclusion_proof(SqliteSubtrees(conn), index, tree_size)


def consistency_proof(conn: sqlite3.Connection, old: int, new: int) -> list[bytes]:
    _check_size(conn, new)
    if not 0 <= old <= new:
        raise LedgerError(f"no consistency proof from size {old} to the smaller size {new}")
    return tree.consistency_proof(SqliteSubtrees(conn), old, new)


def entry(conn: sqlite3.Connection, index: int) -> bytes:
    row = conn.execute("SELECT entry FROM ledger_entries WHERE idx=?", (index,)).fetchone()
    if row is None:
        raise LedgerError(f"no ledger entry {index}: the ledger holds {size(conn)}")
    return bytes(row[0])


def find_message(conn: sqlite3.Connection, device_id: str, seq: int,
                 channel: str = "evt") -> int | None:
    """Index of the entry holding a device's message (custody events: channel evt)."""
    row = conn.execute("SELECT idx FROM ledger_entries WHERE device_id=? AND seq=? AND "
                       "subkind=? ORDER BY idx LIMIT 1", (device_id, seq, channel)).fetchone()
    return None if row is None else int(row[0])


def get_meta(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM ledger_meta WHERE name=?", (name,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO ledger_meta (name, value) VALUES (?,?)", (name, value))


def _check_size(conn: sqlite3.Connection, tree_size: int) -> None:
    have = size(conn)
    if not 0 <= tree_size <= have:
        raise LedgerError(f"tree size {tree_size} is out of range: the ledger holds {have} "
                          "entries")
