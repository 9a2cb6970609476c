"""The read models the API and the CLI serve: weighings, alarms, health, rejections, counts."""

from __future__ import annotations

from typing import Any

from controller.storage.database import Store

# each custody row with the ledger entry that proves it: its leaf index and RFC 9162 leaf
# hash (hex), so a reader goes from a row to its inclusion proof in one step
# and whether the device's own signature was checked on it (messages.device_signed; NULL,
# before device keys, reads as false)
_PROOF = ("l.idx AS leaf_index, lower(hex(l.leaf_hash)) AS entry_hash, "
          "coalesce(m.device_signed, 0) AS device_signed")
_JOIN = ("LEFT JOIN ledger_entries l ON l.device_id = t.device_id AND l.seq = t.seq AND "
         "l.kind = 'device_message' AND l.subkind = 'evt' "
         "LEFT JOIN messages m ON m.device_id = t.device_id AND m.seq = t.seq")


def weighings(store: Store, *, device_id: str | None = None, plate: str | None = None,
              since_ms: int | None = None, until_ms: int | None = None, limit: int = 100,
              offset: int = 0, flagged: bool | None = None) -> list[dict[str, Any]]:
    """Weighings, newest device time first, filtered by device, plate, device time and
    whether the controller flagged them (``flagged``: None, either); each with the
    ``leaf_index`` and ``entry_hash`` of its ledger entry."""
    where, args = [], []
    for clause, value in (("t.device_id = ?", device_id), ("t.plate = ?", plate),
                          ("t.device_ts >= ?", since_ms), ("t.device_ts < ?", until_ms)):
        if value is not None:
            where.append(clause)
            args.append(value)
    if flagged is not None:  # unchecked (NULL, before schema 5) counts as not flagged
        where.append("coalesce(t.flags_json, '[]') " + ("!=" if flagged else "=") + " '[]'")
    sql = f"SELECT t.*, {_PROOF} FROM weighings t {_JOIN}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY t.device_ts DESC, t.device_id, t.seq DESC LIMIT ? OFFSET ?"
    return list(store.db.query(sql, [*args, limit, offset]))


def weighing(store: Store, device_id: str, seq: int) -> dict[str, Any] | None:
    """One weighing with its ledger entry's ``leaf_index`` and ``entry_hash``, or None."""
    rows = list(store.db.query(f"SELECT t.*, {_PROOF} FROM weighings t {_JOIN} WHERE "
                               "t.device_id=? AND t.seq=?", [device_id, seq]))
    return rows[0] if rows else None


def alarms(store: Store, *, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Device alarm events (raised and cleared, one row each), newest first, each with its
    ledger entry's ``leaf_index`` and ``entry_hash``."""
    sql = f"SELECT t.*, {_PROOF} FROM alarms t {_JOIN}"
    if device_id is None:
        return list(store.db.query(sql + " ORDER BY t.received_ms DESC, t.seq DESC LIMIT ?",
                                   [limit]))
    return list(store.db.query(sql + " WHERE t.device_id=? ORDER BY t.received_ms DESC, "
                               "t.seq DESC LIMIT ?", [device_id, limit]))


def health(store: Store, device_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """A device's health samples, newest first."""
    return list(store.db.query("SELECT * FROM health WHERE device_id=? ORDER BY id DESC LIMIT ?",
                               [device_id, limit]))


def rejections(store: Store, *, reason: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Rejected messages, newest first."""
    if reason is None:
        return list(store.db.query("SELECT * FROM rejections ORDER BY id DESC LIMIT ?", [limit]))
    return list(store.db.query("SELECT * FROM rejections WHERE reason=? ORDER BY id DESC "
                               "LIMIT ?", [reason, limit]))


def rejected_by_reason(store: Store) -> dict[str, int]:
    """Every rejection ever counted, by reason: kept in full or counted only (a flood keeps
    only the first few of each device, reason and window in ``rejections``)."""
    return {str(r["reason"]): int(r["n"]) for r in store.db.query(
        "SELECT reason, sum(total) AS n FROM rejection_buckets GROUP BY reason")}


def counts(store: Store) -> dict[str, int]:
    """Stored custody events and weighings."""
    return {"events": store.db["messages"].count, "weighings": store.db["weighings"].count}


def store_id(store: Store) -> str:
    """The store's random id (made when it was created)."""
    row = store.conn.execute("SELECT value FROM store_meta WHERE name='store_id'").fetchone()
    return str(row[0]) if row else "0"
