"""The audit of train manifests: ``trains`` and ``train_cars`` rebuilt from the ledger's
``train`` decisions (controller/trains.py: manifest, passage, release) and compared row by
row (edited, deleted, added), as controller/audit_trips.py does for orders and trips.
Passages themselves (``passage_cars``) are a projection of custody events, audited with
the others by controller/audit.py."""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.storage import audit_reads
from controller.storage import rail as rail_rows

KINDS = ("train",)
Row = dict[str, Any]


class Rebuilt:
    """The rows the log's ``train`` decisions make."""

    def __init__(self) -> None:
        self.trains: dict[str, Row] = {}
        self.cars: dict[str, Row] = {}

    def apply(self, e: entry_mod.Decision) -> None:
        b = e.body
        action = b["action"]
        tid = b["train_id"]
        if action == "manifest":
            self.trains[tid] = {
                "train_id": tid, "reader": b["reader"], "direction": b["direction"],
                "status": "open", "note": b.get("note"), "actor": e.actor,
                "created_ms": e.time_ms, "updated_ms": e.time_ms, "passage_device": None,
                "passage_seq": None, "released_ms": None, "released_by": None}
            for i, c in enumerate(b["cars"]):
                self.cars[f"{tid}/{i}"] = {"key": f"{tid}/{i}", "initial": c["initial"],
                                           "number": c["number"], "lot": c.get("lot"),
                                           "destination": c.get("destination"),
                                           "declared_kg": c.get("declared_kg")}
        elif action == "passage" and tid in self.trains:
            self.trains[tid].update(status="passed", updated_ms=e.time_ms,
                                    passage_device=b["device_id"], passage_seq=b["seq"])
        elif action == "release" and tid in self.trains:
            self.trains[tid].update(status="released", updated_ms=e.time_ms,
                                    released_ms=e.time_ms, released_by=e.actor)


def audit_trains(conn: Any, report: AuditReport) -> None:
    """Check trains and train_cars against the log (adds to ``report``)."""
    book = Rebuilt()
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
            if isinstance(e, entry_mod.Decision):
                book.apply(e)
        except (EntryFormatError, KeyError, TypeError) as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a train decision does not replay: {exc}"))
    compare("trains", "train_id", book.trains, rail_rows.all_trains(conn), report)
    cars = [{"key": f"{r['train_id']}/{r['idx']}", "initial": r["initial"],
             "number": r["number"], "lot": r["lot"], "destination": r["destination"],
             "declared_kg": r["declared_kg"]} for r in rail_rows.all_train_cars(conn)]
    compare("train_cars", "key", book.cars, cars, report)


def check_decision(conn: Any, idx: int, decision: entry_mod.Decision,
                   report: AuditReport) -> None:
    """Check the ``train_cars`` one new ``manifest`` decision made (the audit of new
    entries); the ``trains`` rows, which later decisions change, are checked by the full
    audit."""
    b = decision.body
    if b.get("action") != "manifest":
        return
    book = Rebuilt()
    book.apply(decision)
    tid = b["train_id"]
    stored = [{"key": f"{r['train_id']}/{r['idx']}", "initial": r["initial"],
               "number": r["number"], "lot": r["lot"], "destination": r["destination"],
               "declared_kg": r["declared_kg"]} for r in rail_rows.train_cars(conn, tid)]
    compare("train_cars", "key", book.cars, stored, report)
