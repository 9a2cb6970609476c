"""The audit of lot holds (with their kind and four-eyes approvals), out-gate decisions and
commands: rebuilt from the ledger's ``hold``, ``release``, ``release_approval``, ``gate`` and
``command`` decisions and compared row by row (edited,
deleted, added), as controller/audit_trips.py does for orders and trips.

A command's delivery state (attempts, acknowledgement, expiry) changes after its decision
and is proved by other entries (the device's ``cmdack`` as received, the
``command_unacknowledged`` alert); what its ``command`` decision fixes for good (device,
kind, body, issue and expiry) is what is compared here.
"""

from __future__ import annotations

import json
from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.storage import audit_reads
from controller.storage import commands as command_rows
from controller.storage import holds as hold_rows

KINDS = ("hold", "release", "release_approval", "gate", "command")
COMMAND_FIXED = ("id", "device_id", "kind", "body_json", "issued_ms", "expires_ms")
Row = dict[str, Any]


class Rebuilt:
    """The rows the log's decisions make."""

    def __init__(self) -> None:
        self.holds: dict[Any, Row] = {}
        self.gates: dict[Any, Row] = {}
        self.commands: dict[Any, Row] = {}
        self.approvals: dict[Any, Row] = {}

    def apply(self, e: entry_mod.Decision) -> None:
        b = e.body
        if e.decision == "hold":
            self.holds[b["hold_id"]] = {
                "id": b["hold_id"], "lot": b["lot"], "kind": b.get("kind", "manual"),
                "reason": b["reason"], "actor": e.actor,
                "held_ms": e.time_ms, "released_ms": None, "released_by": None,
                "release_reason": None}
        elif e.decision == "release" and b["hold_id"] in self.holds:
            self.holds[b["hold_id"]].update(released_ms=e.time_ms, released_by=e.actor,
                                            release_reason=b["reason"])
        elif e.decision == "release_approval":
            key = f"{b['hold_id']}/{e.actor}"
            self.approvals[key] = {"key": key, "hold_id": b["hold_id"], "officer": e.actor,
                                   "reason": b["reason"], "approved_ms": e.time_ms}
        elif e.decision == "gate":
            key = f"{b['device_id']}/{b['weighing_seq']}"
            self.gates[key] = {
                "key": key, "action": b["action"], "reasons": b["reasons"],
                "order_id": b["order_id"], "lot": b["lot"], "plate": b["plate"],
                "command_id": b["command_id"], "decided_ms": e.time_ms}
        elif e.decision == "command":
            self.commands[b["command_id"]] = {
                "id": b["command_id"], "device_id": b["device_id"], "kind": b["kind"],
                "body_json": json.dumps(b["body"], sort_keys=True), "issued_ms": e.time_ms,
                "expires_ms": b["expires_ms"]}


def rebuild(conn: Any, report: AuditReport) -> Rebuilt:
    out = Rebuilt()
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
            if isinstance(e, entry_mod.Decision):
                out.apply(e)
        except (EntryFormatError, KeyError, TypeError) as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a {'/'.join(KINDS)} decision does not replay: {exc}"))
    return out


def _gate_row(r: Row) -> Row:
    key = f"{r['device_id']}/{r['weighing_seq']}"
    return {"key": key, "action": r["action"], "reasons": json.loads(r["reasons_json"]),
            "order_id": r["order_id"], "lot": r["lot"], "plate": r["plate"],
            "command_id": r["command_id"], "decided_ms": r["decided_ms"]}


def audit_gate(conn: Any, report: AuditReport) -> None:
    """Check holds, gate_decisions and commands against the log (adds to ``report``)."""
    book = rebuild(conn, report)
    compare("holds", "id", book.holds, hold_rows.all_holds(conn), report)
    compare("hold_approvals", "key", book.approvals,
            [{**r, "key": f"{r['hold_id']}/{r['officer']}"}
             for r in hold_rows.all_approvals(conn)], report)
    compare("gate_decisions", "key", book.gates,
            [_gate_row(r) for r in command_rows.all_gate_decisions(conn)], report)
    compare("commands", "id", book.commands,
            [{c: r[c] for c in COMMAND_FIXED} for r in command_rows.all_commands(conn)], report)
