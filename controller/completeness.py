"""Completeness of each device's custody record: what is committed, missing, declared lost.

A device's seqs 1..N are complete up to its watermark (``committed_seq``); above it, a
seq is *missing* until it arrives, or *lost* once the device (a signed ``gap``) or an
admin declares that it never will. Evidence the device could not store at all (its outbox
full) never got a seq: the device counts it and reports it in a signed ``refused`` notice.
Declaring is a ledger decision with its actor.
"""

from __future__ import annotations

from typing import Any

from controller import registry
from controller.errors import Conflict, InvalidInput
from controller.storage import Store, custody, ledger_log, now_ms


def of_device(store: Store, device_id: str, committed_seq: int) -> dict[str, Any]:
    """``missing`` and ``lost`` (first, last) seq ranges of one device, and how many custody
    events it refused (reported by its signed ``refused`` notices; they never had a seq)."""
    return {"missing": custody.missing_ranges(store.conn, device_id, committed_seq),
            "lost": custody.lost_ranges(store.conn, device_id),
            "refused_events": custody.refused_total(store.conn, device_id)}


def declare_lost(store: Store, device_id: str, first: int, last: int, *, reason: str,
                 actor: str, now: int | None = None) -> int:
    """Record seqs [first, last] as never to arrive; return the device's new watermark."""
    now = now if now is not None else now_ms()
    if last < first:
        raise InvalidInput(f"last_seq {last} < first_seq {first}")
    with store.transaction() as conn:
        device = registry.get(store, device_id)
        if first <= device["committed_seq"]:
            raise Conflict(f"seqs up to {device['committed_seq']} are already committed")
        passed = custody.passed_seq(conn, device_id)
        if last > passed:
            # the ack that follows a declaration tells the device to drop everything up to
            # the watermark: seqs it has not numbered yet are its future events
            raise Conflict(f"{device_id} has numbered seqs only up to {passed} (its highest "
                           "stored event, or its last health's next_seq - 1): a lost range "
                           f"must end at or below {passed}")
        committed = custody.add_lost_range(conn, device_id, first, last, reason=reason,
                                           actor=actor, now_ms=now)
        ledger_log.append_decision(conn, "declare_lost", actor, {
            "device_id": device_id, "first_seq": first, "last_seq": last, "reason": reason},
            now)
    return committed
