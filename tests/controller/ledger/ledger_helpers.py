"""Helpers shared by the ledger tests (importable: conftest.py puts this directory on the path)."""

from __future__ import annotations

import sqlite3

from controller.ledger import entries, tree
from controller.storage import ledger_log as ledger_store
from controller.storage import transaction

ORIGIN = "portwatch/test-site"


def weighing(seq: int, device: str = "wb-1") -> bytes:
    wire = (f'{{"v":1,"dev":"{device}","boot":1,"seq":{seq},"ts":{1000 + seq},'
            f'"kind":"weighing","body":{{"plate":"辽B{seq:05d}","net_kg":{seq * 10}}}}}'
            f"\nk1:{'ab' * 32}").encode()
    return entries.device_message(device_id=device, channel="evt",
                                  topic=f"pw/v1/test-site/{device}/evt", seq=seq,
                                  received_ms=2000 + seq, wire=wire)


def append(conn: sqlite3.Connection, seqs: range, device: str = "wb-1") -> list[int]:
    """Append weighings of these seqs in one transaction of our own."""
    with transaction(conn):
        return ledger_store.append(conn, [weighing(s, device) for s in seqs])


def rebuild_hashes(conn: sqlite3.Connection) -> None:
    """What a careful tamperer does after editing entries: recompute every leaf hash and
    every cached subtree so the store is self-consistent again."""
    rows = conn.execute("SELECT idx, entry FROM ledger_entries ORDER BY idx").fetchall()
    hashes = [tree.leaf_hash(bytes(e)) for _, e in rows]
    conn.executemany("UPDATE ledger_entries SET leaf_hash=? WHERE idx=?",
                     [(h, idx) for h, (idx, _) in zip(hashes, rows, strict=True)])
    conn.execute("DELETE FROM ledger_nodes")
    full = tree.MemoryTree(hashes)
    conn.executemany("INSERT INTO ledger_nodes (id, hash) VALUES (?,?)",
                     [((level << 40) | i, h) for level in range(1, len(full.levels))
                      for i, h in enumerate(full.levels[level])])
