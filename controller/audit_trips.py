"""The audit of transfer orders, trips and trip events: rebuilt by folding the ledger's
``order`` and ``trip`` decisions (controller/projections/orders.py, the same fold the
writer uses) and compared row by row: edited, deleted, added, by table and key.

``check_decision`` is the incremental check the controller runs over new entries: a
``trip`` decision's event row, an order's fields as created (what one decision fixes for
good); statuses, which later decisions change, are checked by the full audit.

Memory is the rebuilt rows of every order and trip: a port's orders are thousands a day,
not millions, so they are held whole (the custody tables are audited in chunks instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.projections.orders import ORDER_FIELDS, Book, event_row
from controller.storage import audit_reads
from controller.storage import orders as order_rows
from controller.storage import trips as trip_rows

KINDS = ("order", "trip")
Row = dict[str, Any]


def rebuild(conn: Any, report: AuditReport) -> Book:
    """The three tables as the log's decisions make them."""
    book = Book()
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
        except EntryFormatError as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"an {KINDS} decision does not decode: {exc}"))
            continue
        if isinstance(e, entry_mod.Decision):
            book.apply(idx, e.decision, e.actor, e.body, e.time_ms)
    return book


def compare(table: str, key: str, expected: Mapping[Any, Row], stored: Iterable[Row],
            report: AuditReport) -> None:
    """Diff stored rows against rebuilt ones, keyed by ``key``."""
    count = report.count(table)
    seen = set()
    for row in stored:
        k = row[key]
        seen.add(k)
        count.checked += 1
        want = expected.get(k)
        if want is None:
            report.add(Mismatch(table, str(k), "added", detail="no ledger decision makes it"))
            continue
        diffs = tuple((c, row.get(c), want.get(c)) for c in want if row.get(c) != want.get(c))
        if diffs:
            report.add(Mismatch(table, str(k), "edited", diffs))
    for k in expected:
        if k not in seen:
            report.add(Mismatch(table, str(k), "deleted",
                                detail="the ledger's decisions make this row; the store "
                                "lacks it"))


def audit_trips(conn: Any, report: AuditReport) -> None:
    """Check orders, trips and trip_events against the log (adds to ``report``)."""
    book = rebuild(conn, report)
    compare("orders", "order_id", book.orders, order_rows.all_orders(conn), report)
    compare("trips", "trip_id", book.trips, trip_rows.all_trips(conn), report)
    compare("trip_events", "idx", book.events, trip_rows.all_events(conn), report)


def check_decision(conn: Any, idx: int, decision: entry_mod.Decision,
                   report: AuditReport) -> None:
    """Check the rows one new ``order`` or ``trip`` decision made (the audit of new entries)."""
    b = decision.body
    if decision.decision == "trip":
        want = event_row(idx, b, decision.actor, decision.time_ms)
        stored = [r for r in trip_rows.events(conn, str(b.get("trip_id"))) if r["idx"] == idx]
        compare("trip_events", "idx", {idx: want}, stored, report)
    elif decision.decision == "order" and b.get("action") == "create":
        o = b.get("order") or {}
        oid = str(o.get("order_id"))
        want_fields = {f: o.get(f) for f in ORDER_FIELDS}
        want_fields.update(created_ms=decision.time_ms, created_by=decision.actor)
        row = order_rows.get_order(conn, oid)
        stored = [] if row is None else [{k: row[k] for k in want_fields}]
        compare("orders", "order_id", {oid: want_fields}, stored, report)
