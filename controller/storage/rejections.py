"""Rejection buckets: how many messages of one (device, reason, window) were refused.

A flood of refused messages must cost bounded space, so the ingest keeps the first few of
each bucket in full (``rejections`` rows, ledger entries) and only counts the rest here:
one row per bucket, upserted once per batch. When a window has closed, its buckets with
counted-only messages get one signed summary in the ledger; ``summary_idx`` records it in
the same transaction, so a summary is appended once, and a restart finds every count.
``controller/ingest/writer.py`` decides; this module only reads and writes the rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from controller.storage.database import Store

# device_id of the bucket that folds every unregistered or unreadable sender: "*" is not a
# valid device id (protocols/topics.py), so it never names a real device
FOLDED = "*"

_COLUMNS = ("device_id", "reason", "window_ms", "window_s", "kept", "total", "bytes",
            "first_ms", "last_ms", "summary_idx")


def bucket_counts(conn: sqlite3.Connection, device_id: str, reason: str,
                  window_ms: int) -> tuple[int, int, bool]:
    """(kept in full, total, summarised yet) of one bucket; (0, 0, False) when it has none."""
    row = conn.execute("SELECT kept, total, summary_idx FROM rejection_buckets WHERE "
                       "device_id=? AND reason=? AND window_ms=?",
                       (device_id, reason, window_ms)).fetchone()
    return (0, 0, False) if row is None else (int(row[0]), int(row[1]), row[2] is not None)


def window_kept(conn: sqlite3.Connection, window_ms: int) -> int:
    """How many rejections of the window starting at ``window_ms`` are kept in full."""
    row = conn.execute("SELECT coalesce(sum(kept), 0) FROM rejection_buckets WHERE "
                       "window_ms=?", (window_ms,)).fetchone()
    return int(row[0])


def add_counts(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Add one batch's counts: (device_id, reason, window_ms, window_s, kept, total, bytes,
    first_ms, last_ms) rows, one per bucket."""
    conn.executemany(
        "INSERT INTO rejection_buckets (device_id, reason, window_ms, window_s, kept, total, "
        "bytes, first_ms, last_ms) VALUES (?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (device_id, reason, window_ms) DO UPDATE SET "
        "kept=kept+excluded.kept, total=total+excluded.total, bytes=bytes+excluded.bytes, "
        "first_ms=min(first_ms, excluded.first_ms), last_ms=max(last_ms, excluded.last_ms)",
        rows)


def due_summaries(conn: sqlite3.Connection, now_ms: int) -> list[dict[str, Any]]:
    """Buckets with messages counted only and no summary yet whose window ended by
    ``now_ms`` minus a grace (a quarter of the window, at most a minute) for messages
    received in it and still queued, oldest first."""
    cur = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM rejection_buckets WHERE summary_idx IS NULL AND "
        "total > kept AND window_ms + window_s * 1000 + min(60000, window_s * 250) <= ? "
        "ORDER BY window_ms, device_id, reason", (now_ms,))
    return [dict(zip(_COLUMNS, row, strict=True)) for row in cur.fetchall()]


def mark_summarized(conn: sqlite3.Connection,
                    done: Iterable[tuple[str, str, int, int]]) -> None:
    """Record the ledger index of each bucket's summary: (device_id, reason, window_ms, idx)."""
    conn.executemany("UPDATE rejection_buckets SET summary_idx=? WHERE device_id=? AND "
                     "reason=? AND window_ms=?",
                     [(idx, dev, reason, window) for dev, reason, window, idx in done])


def buckets(store: Store, *, device_id: str | None = None, reason: str | None = None,
            since_ms: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Rejection counts per device, reason and window, newest window first."""
    where, args = [], []
    for clause, value in (("device_id = ?", device_id), ("reason = ?", reason),
                          ("window_ms >= ?", since_ms)):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM rejection_buckets"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY window_ms DESC, device_id, reason LIMIT ?"
    return list(store.db.query(sql, [*args, limit]))
