"""The audit of lots and their status history: rebuilt by folding the ledger's ``lot``
decisions (controller/projections/lots.py, the same fold the writer uses) and compared row
by row (edited, deleted, added), as controller/audit_trips.py does for orders and trips.

Lots are a port's cargoes (hundreds a year), so they are held whole in memory.
"""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.projections.lots import Book, event_row
from controller.storage import audit_reads
from controller.storage import lots as lot_rows

KINDS = ("lot",)


def rebuild(conn: Any, report: AuditReport) -> Book:
    """``lots`` and ``lot_events`` as the log's ``lot`` decisions make them."""
    book = Book()
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
        except EntryFormatError as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a lot decision does not decode: {exc}"))
            continue
        if isinstance(e, entry_mod.Decision):
            book.apply(idx, e.decision, e.actor, e.body, e.time_ms)
    return book


def audit_lots(conn: Any, report: AuditReport) -> None:
    """Check lots and lot_events against the log (adds to ``report``)."""
    book = rebuild(conn, report)
    compare("lots", "lot_id", book.lots, lot_rows.all_lots(conn), report)
    compare("lot_events", "idx", book.events, lot_rows.all_events(conn), report)


def check_decision(conn: Any, idx: int, decision: entry_mod.Decision,
                   report: AuditReport) -> None:
    """Check the ``lot_events`` row one new ``lot`` decision made (the audit of new
    entries); the ``lots`` rows, which later decisions change, are checked by the full
    audit."""
    want = event_row(idx, decision.body, decision.actor, decision.time_ms)
    stored = [r for r in lot_rows.events(conn, want["lot_id"]) if r["idx"] == idx]
    compare("lot_events", "idx", {idx: want}, stored, report)
