"""Bounded space for refused traffic: keep the first few in full, count the rest, summarise.

A broker login without a signing key can send as many forged messages as the broker takes.
Each rejection is put in a bucket, (sender, reason, window of receipt), where the sender is
the device id the topic names when that device is registered (the broker's ACL bounds who
can write there) and ``*`` for every unregistered or unreadable sender (their number is
not bounded, so they share one bucket per reason and window). The first
``keep_per_bucket`` rejections of a bucket, and at most ``keep_per_window`` of a whole
window, are kept in full: a ``rejections`` row with the first bytes and a ledger entry.
The others only add to the bucket's counters (count, bytes, first and last receipt). When
a window has closed, each bucket that counted messages it did not keep gets one
``rejection_summary`` entry in the ledger, whose checkpoints sign it.

The hot path counts in memory per batch and writes one upsert per bucket per batch.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from controller import ledger
from controller.ingest.verify import Received
from controller.storage import ledger_log
from controller.storage import now_ms as wall_clock_ms
from controller.storage import rejections as buckets_store

log = logging.getLogger("portwatch.ingest")
SUMMARY = "rejection_summary"  # the ledger decision kind of a closed bucket's counts


@dataclass(frozen=True, slots=True)
class RejectionLimits:
    """How much of refused traffic is kept in full (README, Guarantees: the bound)."""

    keep_per_bucket: int = 5
    keep_per_window: int = 500
    window_s: int = 3600

    def window_of(self, received_ms: int) -> int:
        """The start (ms) of the window holding ``received_ms``."""
        width = self.window_s * 1000
        return received_ms - received_ms % width


DEFAULT_LIMITS = RejectionLimits()


@dataclass(slots=True)
class _Bucket:
    kept_before: int
    total_before: int
    kept: int = 0
    total: int = 0
    bytes: int = 0
    first_ms: int = 0
    last_ms: int = 0
    said: bool = False


@dataclass(slots=True)
class Tally:
    """One batch's rejections by bucket: decides which are kept in full."""

    conn: sqlite3.Connection
    limits: RejectionLimits = DEFAULT_LIMITS
    at_ms: int = field(default_factory=wall_clock_ms)  # the commit's time
    buckets: dict[tuple[str, str, int], _Bucket] = field(default_factory=dict)
    window_kept: dict[int, int] = field(default_factory=dict)
    moved: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def _bucket(self, dev: str, reason: str, window: int) -> tuple[int, _Bucket]:
        """The bucket a rejection received in ``window`` counts in, and its window.

        A message received just before its window ended may wait in the queue until the
        window has been summed up: it then counts in the window open now, so a summary is
        never contradicted by a later count, and nothing goes uncounted.
        """
        window = self.moved.get((dev, reason, window), window)
        b = self.buckets.get((dev, reason, window))
        if b is not None:
            return window, b
        kept, total, summarized = buckets_store.bucket_counts(self.conn, dev, reason, window)
        current = self.limits.window_of(self.at_ms)
        if summarized and current != window:
            self.moved[(dev, reason, window)] = current
            return self._bucket(dev, reason, current)
        b = self.buckets[(dev, reason, window)] = _Bucket(kept, total)
        return window, b

    def count(self, msg: Received, sender: str | None, reason: str, registered: bool) -> bool:
        """Count one rejection; True when it is to be kept in full."""
        dev = sender if registered and sender else buckets_store.FOLDED
        window, b = self._bucket(dev, reason, self.limits.window_of(msg.received_ms))
        if b.total == 0:
            b.first_ms = msg.received_ms
        if window not in self.window_kept:
            self.window_kept[window] = buckets_store.window_kept(self.conn, window)
        b.total += 1
        b.bytes += len(msg.payload)
        b.first_ms = min(b.first_ms, msg.received_ms)
        b.last_ms = max(b.last_ms, msg.received_ms)
        if b.kept_before + b.kept < self.limits.keep_per_bucket and \
                self.window_kept[window] < self.limits.keep_per_window:
            b.kept += 1
            self.window_kept[window] += 1
            if self.window_kept[window] == self.limits.keep_per_window:  # once per window
                log.warning("%d rejections kept in full in the window from %d ms: further "
                            "ones are only counted until it ends", self.limits.keep_per_window,
                            window)
            return True
        if not b.said and b.total_before + b.total - 1 == b.kept_before + b.kept:
            b.said = True  # the bucket's first counted-only message: say so once
            log.warning("rejections %s from %s: the first %d of the window from %d ms are "
                        "kept in full, further ones are only counted (a summary goes to the "
                        "ledger when the window ends)", reason, dev,
                        self.limits.keep_per_bucket, window)
        return False

    def write(self) -> None:
        """One upsert per bucket (inside the batch's transaction)."""
        buckets_store.add_counts(self.conn, [
            (dev, reason, window, self.limits.window_s, b.kept, b.total, b.bytes, b.first_ms,
             b.last_ms) for (dev, reason, window), b in self.buckets.items()])


def summarize(conn: sqlite3.Connection, now_ms: int) -> int:
    """Append one ``rejection_summary`` per closed bucket that counted messages it did not
    keep, and mark it summarised; inside the caller's transaction. Return how many."""
    due = buckets_store.due_summaries(conn, now_ms)
    if not due:
        return 0
    entries = [ledger.decision(kind=SUMMARY, actor="controller", time_ms=now_ms, body={
        "device_id": b["device_id"], "reason": b["reason"], "window_start_ms": b["window_ms"],
        "window_s": b["window_s"], "total": b["total"], "bytes": b["bytes"],
        "kept_in_full": b["kept"], "counted_only": b["total"] - b["kept"],
        "first_ms": b["first_ms"], "last_ms": b["last_ms"]}) for b in due]
    indexes = ledger_log.append(conn, entries)
    buckets_store.mark_summarized(conn, [(b["device_id"], b["reason"], b["window_ms"], idx)
                                         for b, idx in zip(due, indexes, strict=True)])
    for b in due:
        log.info("rejection summary: %s from %s, window from %d ms: %d (%d bytes), %d kept "
                 "in full", b["reason"], b["device_id"], b["window_ms"], b["total"],
                 b["bytes"], b["kept"])
    return len(due)
