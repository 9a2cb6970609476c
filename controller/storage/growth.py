"""What a kind of device message costs the store: for the benchmark's per-truck-day figures.

Counted from the rows themselves, not from file sizes (free pages and the WAL would blur
them): the ledger entries holding the messages of a kind (their canonical bytes, plus one
32-byte leaf hash each and about one stored subtree hash per entry), the messages rows'
payloads, and the rows of a projection table.
"""

from __future__ import annotations

import sqlite3
from typing import Any

NODE_ROW_BYTES = 40  # an 8-byte id and a 32-byte hash: ledger_nodes adds ~1 per leaf


def kind_cost(conn: sqlite3.Connection, kind: str) -> dict[str, Any]:
    """Messages of ``kind``: how many, their wire bytes, and their ledger entries' bytes."""
    n, payload = conn.execute("SELECT count(*), coalesce(sum(length(payload)), 0) FROM "
                              "messages WHERE kind=?", [kind]).fetchone()
    entries, entry_bytes = conn.execute(
        "SELECT count(*), coalesce(sum(length(l.entry) + length(l.leaf_hash)), 0) FROM "
        "ledger_entries l JOIN messages m ON l.device_id = m.device_id AND l.seq = m.seq "
        "AND l.subkind = 'evt' WHERE m.kind=?", [kind]).fetchone()
    return {"messages": int(n), "wire_bytes": int(payload), "ledger_entries": int(entries),
            "ledger_bytes": int(entry_bytes) + int(entries) * NODE_ROW_BYTES}


def rows(conn: sqlite3.Connection, table: str) -> int:
    """Rows of one of the store's tables (0 when it does not exist)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                        [table]).fetchone():
        return 0
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])


def alerts_raised(conn: sqlite3.Connection, code: str) -> int:
    return int(conn.execute("SELECT count(*) FROM alerts WHERE code=?", [code]).fetchone()[0])


def page_bytes(conn: sqlite3.Connection) -> int:
    """The store's used pages in bytes (free pages left out)."""
    count = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    return (count - free) * size
