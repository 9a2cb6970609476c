"""The audit's reads: ledger entries by device and seq, and the served rows they must match.

Only reads (the audit in controller/audit.py decides; it writes nothing but its own alerts
and decisions, through ``supervision`` and ``ledger_log``). Every read is bounded: by
device and seq range, or by ledger index, so a store of any size is audited in chunks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from controller.storage.custody import PROJECTED_COLUMNS

# the custody tables keyed by (device_id, seq): one row per event
MESSAGE_COLUMNS = ("device_id", "seq", "boot", "kind", "device_ts", "received_ms", "topic",
                   "payload", "sha256")
_KNOWN_TABLES = {*PROJECTED_COLUMNS, "messages"}


def _table(name: str) -> str:
    if name not in _KNOWN_TABLES:  # the name goes into SQL text: only the schema's own
        raise ValueError(f"{name!r} is not an audited table")
    return name


def decisions(conn: sqlite3.Connection, kinds: Sequence[str],
              after_idx: int = -1) -> list[tuple[int, bytes]]:
    """(idx, entry) of the decisions of the given kinds past ``after_idx``, in log order."""
    marks = ",".join("?" * len(kinds))
    return [(int(i), bytes(e)) for i, e in conn.execute(
        f"SELECT idx, entry FROM ledger_entries WHERE kind='decision' AND subkind IN "
        f"({marks}) AND idx>? ORDER BY idx", [*kinds, after_idx])]


def devices(conn: sqlite3.Connection, tables: Iterable[str]) -> set[str]:
    """Every device id the ledger, the registry or an audited table names."""
    out = {str(r[0]) for r in conn.execute(
        "SELECT DISTINCT device_id FROM ledger_entries WHERE device_id IS NOT NULL")}
    out |= {str(r[0]) for r in conn.execute("SELECT device_id FROM devices")}
    for t in tables:
        out |= {str(r[0]) for r in conn.execute(f"SELECT DISTINCT device_id FROM {_table(t)}")
                if r[0] is not None}
    return out


def events(conn: sqlite3.Connection, device_id: str, after_seq: int,
           limit: int) -> list[tuple[int, int, bytes, bytes]]:
    """(idx, seq, entry, leaf_hash) of a device's custody events (channel evt) with seq
    above ``after_seq``, lowest seq first, at most ``limit``."""
    return [(int(i), int(s), bytes(e), bytes(h)) for i, s, e, h in conn.execute(
        "SELECT idx, seq, entry, leaf_hash FROM ledger_entries WHERE device_id=? AND seq>? AND "
        "kind='device_message' AND subkind='evt' ORDER BY seq, idx LIMIT ?",
        (device_id, after_seq, limit))]


def entries_from(conn: sqlite3.Connection, start_idx: int,
                 limit: int) -> list[tuple[int, bytes, bytes]]:
    """(idx, entry, leaf_hash) of up to ``limit`` entries from ``start_idx`` on."""
    return [(int(i), bytes(e), bytes(h)) for i, e, h in conn.execute(
        "SELECT idx, entry, leaf_hash FROM ledger_entries WHERE idx>=? ORDER BY idx LIMIT ?",
        (start_idx, limit))]


def size(conn: sqlite3.Connection) -> int:
    """Entries in the log (its next index)."""
    row = conn.execute("SELECT max(idx) FROM ledger_entries").fetchone()
    return 0 if row[0] is None else int(row[0]) + 1


def last_telemetry(conn: sqlite3.Connection, device_id: str) -> bytes | None:
    """The entry of the device's latest accepted telemetry message, or None."""
    row = conn.execute("SELECT entry FROM ledger_entries WHERE device_id=? AND "
                       "kind='device_message' AND subkind='tele' ORDER BY idx DESC LIMIT 1",
                       (device_id,)).fetchone()
    return None if row is None else bytes(row[0])


def rows_in_range(conn: sqlite3.Connection, table: str, device_id: str, after_seq: int,
                  upto_seq: int | None) -> list[dict[str, Any]]:
    """A device's rows of a (device_id, seq) table with seq in (after_seq, upto_seq]."""
    sql = f"SELECT * FROM {_table(table)} WHERE device_id=? AND seq>?"
    args: list[Any] = [device_id, after_seq]
    if upto_seq is not None:
        sql += " AND seq<=?"
        args.append(upto_seq)
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def rows_at(conn: sqlite3.Connection, table: str, device_id: str,
            seq: int) -> list[dict[str, Any]]:
    """The rows of a (device_id, seq) table under one key (none or one, by its primary key)."""
    return rows_in_range(conn, table, device_id, seq - 1, seq)


def lost_rows(conn: sqlite3.Connection, device_id: str) -> list[dict[str, Any]]:
    """Every declared-lost range of a device (by device ``gap`` notices and by admins)."""
    cur = conn.execute("SELECT * FROM lost_ranges WHERE device_id=? ORDER BY id", (device_id,))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def committed_seq(conn: sqlite3.Connection, device_id: str) -> int | None:
    """A device's stored watermark, or None when the registry has no such device."""
    row = conn.execute("SELECT committed_seq FROM devices WHERE device_id=?",
                       (device_id,)).fetchone()
    return None if row is None else int(row[0] or 0)


def triggers(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, table) of every trigger: portwatch makes none, so each one is someone's."""
    return [(str(n), str(t)) for n, t in conn.execute(
        "SELECT name, tbl_name FROM sqlite_master WHERE type='trigger' ORDER BY name")]
