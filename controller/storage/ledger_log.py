"""The ledger's rows: entries, subtree hashes, checkpoints, cosignatures, the log's origin.

``append`` never begins or commits: the ingest writes a record and the ledger entry that
proves it in the same transaction, so after a crash both are there or neither is, and the
log has no gap. Everything the ledger knows is in these tables (no in-memory state), so a
rolled-back transaction leaves nothing behind. The tree arithmetic and the entry format
are pure code in ``controller/ledger``; this module only stores and reads.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from controller.ledger import entries as entries_mod
from controller.ledger import tree
from controller.ledger.errors import LedgerError
from controller.storage.database import transaction

_NODE_SHIFT = 40  # 2**40 leaves per level is more than any port will log


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
                          "use store.transaction()")
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
    """RFC 9162 inclusion path of entry ``index`` in the tree of ``tree_size``."""
    _check_size(conn, tree_size)
    if not 0 <= index < tree_size:
        raise LedgerError(f"entry {index} is not in the tree of size {tree_size}")
    return tree.inclusion_proof(SqliteSubtrees(conn), index, tree_size)


def consistency_proof(conn: sqlite3.Connection, old: int, new: int) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``old`` entries to that of ``new``."""
    _check_size(conn, new)
    if not 0 <= old <= new:
        raise LedgerError(f"no consistency proof from size {old} to the smaller size {new}")
    return tree.consistency_proof(SqliteSubtrees(conn), old, new)


def entry(conn: sqlite3.Connection, index: int) -> bytes:
    """The canonical bytes of entry ``index``."""
    row = conn.execute("SELECT entry FROM ledger_entries WHERE idx=?", (index,)).fetchone()
    if row is None:
        raise LedgerError(f"no ledger entry {index}: the ledger holds {size(conn)}")
    return bytes(row[0])


def iter_entries(conn: sqlite3.Connection, start: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
    """(index, canonical bytes, leaf hash) of every entry from `start` on, in order."""
    for idx, data, h in conn.execute("SELECT idx, entry, leaf_hash FROM ledger_entries "
                                     "WHERE idx>=? ORDER BY idx", (start,)):
        yield int(idx), bytes(data), bytes(h)


def leaf_hash_at(conn: sqlite3.Connection, index: int) -> bytes | None:
    """The leaf hash recorded for entry `index` when it was appended."""
    row = conn.execute("SELECT leaf_hash FROM ledger_entries WHERE idx=?", (index,)).fetchone()
    return None if row is None else bytes(row[0])


def decisions_before(conn: sqlite3.Connection, kinds: tuple[str, ...],
                     end: int) -> list[tuple[int, bytes]]:
    """(index, canonical bytes) of the decisions of these kinds among the first `end`
    entries (a scan: for exports, not for every checkpoint)."""
    marks = ",".join("?" * len(kinds))
    return [(int(i), bytes(d)) for i, d in conn.execute(
        f"SELECT idx, entry FROM ledger_entries WHERE kind='decision' AND subkind IN ({marks}) "
        "AND idx<? ORDER BY idx", (*kinds, end))]


def find_message(conn: sqlite3.Connection, device_id: str, seq: int,
                 channel: str = "evt") -> int | None:
    """Index of the entry holding a device's message (custody events: channel evt)."""
    row = conn.execute("SELECT idx FROM ledger_entries WHERE device_id=? AND seq=? AND "
                       "subkind=? ORDER BY idx LIMIT 1", (device_id, seq, channel)).fetchone()
    return None if row is None else int(row[0])


def count_messages(conn: sqlite3.Connection, channel: str = "evt") -> int:
    """How many device messages of ``channel`` the ledger holds."""
    row = conn.execute("SELECT count(*) FROM ledger_entries WHERE kind='device_message' AND "
                       "subkind=?", (channel,)).fetchone()
    return int(row[0])


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


# -- checkpoints and cosignatures ------------------------------------------------------

CheckpointRow = tuple[int, int, bytes, str, int]  # id, size, root, note, created_ms
_COLUMNS = "SELECT id, size, root, note, created_ms FROM ledger_checkpoints"


def _row(row: Any) -> CheckpointRow:
    return int(row[0]), int(row[1]), bytes(row[2]), str(row[3]), int(row[4] or 0)


def insert_checkpoint(conn: sqlite3.Connection, size_: int, root_: bytes, note: str,
                      created_ms: int) -> int:
    """Store a signed checkpoint; return its id."""
    cur = conn.execute("INSERT INTO ledger_checkpoints (size, root, note, created_ms) "
                       "VALUES (?,?,?,?)", (size_, root_, note, created_ms))
    return int(cur.lastrowid or 0)


def latest_checkpoint(conn: sqlite3.Connection) -> CheckpointRow | None:
    row = conn.execute(f"{_COLUMNS} ORDER BY size DESC, id DESC LIMIT 1").fetchone()
    return None if row is None else _row(row)


def checkpoint_at_size(conn: sqlite3.Connection, size_: int) -> CheckpointRow | None:
    row = conn.execute(f"{_COLUMNS} WHERE size=? ORDER BY id DESC LIMIT 1", (size_,)).fetchone()
    return None if row is None else _row(row)


def checkpoint_by_id(conn: sqlite3.Connection, checkpoint_id: int) -> CheckpointRow | None:
    row = conn.execute(f"{_COLUMNS} WHERE id=?", (checkpoint_id,)).fetchone()
    return None if row is None else _row(row)


def all_checkpoints(conn: sqlite3.Connection) -> list[CheckpointRow]:
    return [_row(r) for r in conn.execute(f"{_COLUMNS} ORDER BY id")]


def put_cosignature(conn: sqlite3.Connection, checkpoint_id: int, witness: str, vkey: str,
                    line: str, now_ms: int) -> None:
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO ledger_cosignatures (checkpoint_id, witness, vkey, "
                     "line, created_ms) VALUES (?,?,?,?,?)",
                     (checkpoint_id, witness, vkey, line, now_ms))


def cosignature_lines(conn: sqlite3.Connection, checkpoint_id: int) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT line FROM ledger_cosignatures WHERE "
                                            "checkpoint_id=? ORDER BY id", (checkpoint_id,))]


def witness_keys(conn: sqlite3.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT vkey FROM ledger_cosignatures "
                                            "ORDER BY vkey")]
