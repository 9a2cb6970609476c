"""The audit of ore blends: ``blends`` and ``blend_inputs`` rebuilt by folding the ledger's
``blend`` decisions (controller/blends.py ``blend_rows``, the fold the writer uses) and
compared row by row: edited, deleted, added."""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.blends import blend_rows
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.storage import audit_reads
from controller.storage import blends as rows

KINDS = ("blend",)


def audit_blends(conn: Any, report: AuditReport) -> None:
    """Check blends and blend_inputs against the log (adds to ``report``)."""
    want_blends: dict[str, dict[str, Any]] = {}
    want_inputs: dict[str, dict[str, Any]] = {}
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
        except EntryFormatError as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a blend decision does not decode: {exc}"))
            continue
        if not isinstance(e, entry_mod.Decision):
            continue
        blend, inputs = blend_rows(e.body, e.actor, e.time_ms)
        want_blends[str(blend["blend_lot"])] = blend
        for i in inputs:
            want_inputs[f"{i['blend_lot']}|{i['input_lot']}"] = {"key": f"{i['blend_lot']}|"
                                                                 f"{i['input_lot']}", **i}
    compare("blends", "blend_lot", want_blends, rows.all_blends(conn), report)
    compare("blend_inputs", "key", want_inputs, rows.all_inputs(conn), report)
