"""The audit of ``sample_lots``: each row rebuilt from its ``sample_lot`` decision
(controller/samples.py) and compared (edited, deleted, added), as controller/audit_lots.py
does for lots. The ``samples`` rows themselves are a projection of the devices' events,
audited with every projection (controller/audit.py)."""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.samples import DECISION
from controller.storage import audit_reads
from controller.storage import samples as sample_rows


def _key(row: dict[str, Any]) -> str:
    return f"{row['device_id']}/{row['seq']}"


def rebuild(conn: Any, report: AuditReport) -> dict[str, dict[str, Any]]:
    """``sample_lots`` as the log's ``sample_lot`` decisions make it, by device/seq."""
    out: dict[str, dict[str, Any]] = {}
    for idx, data in audit_reads.decisions(conn, (DECISION,)):
        try:
            e = entry_mod.decode(data)
        except EntryFormatError as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a sample_lot decision does not decode: {exc}"))
            continue
        if isinstance(e, entry_mod.Decision):
            row = {c: e.body.get(c) for c in sample_rows.LOT_COLUMNS}
            out.setdefault(_key(row), {**row, "key": _key(row)})  # the first one counts
    return out


def audit_samples(conn: Any, report: AuditReport) -> None:
    """Check sample_lots against the log (adds to ``report``)."""
    stored = [{**r, "key": _key(r)} for r in sample_rows.all_sample_lots(conn)]
    compare("sample_lots", "key", rebuild(conn, report), stored, report)


def check_decision(conn: Any, idx: int, decision: entry_mod.Decision,
                   report: AuditReport) -> None:
    """Check the ``sample_lots`` row one new ``sample_lot`` decision made (the audit of new
    entries, every few seconds in the running controller)."""
    want = {c: decision.body.get(c) for c in sample_rows.LOT_COLUMNS}
    key = _key(want)
    stored = [{**r, "key": _key(r)} for r in sample_rows.lots_at(
        conn, str(decision.body["device_id"]), int(decision.body["seq"]))]
    compare("sample_lots", "key", {key: {**want, "key": key}}, stored, report)
