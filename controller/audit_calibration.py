"""The audit of the balance's inputs entered by people: calibration certificates and draft
surveys, the ``calibrations`` and ``draft_surveys`` tables rebuilt from the ledger's
``calibration`` and ``draft_survey`` decisions and compared row by row (edited, deleted,
added), as controller/audit_gate.py does for holds."""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.storage import audit_reads
from controller.storage import calibrations as rows
from controller.storage import mass_balance as balance_rows

KINDS = ("calibration", "draft_survey")
_FIELDS = ("device_id", "certificate_id", "accuracy_class", "e_kg", "issued_ms",
           "expires_ms", "issuer")


def _key(r: dict[str, Any]) -> str:
    return f"{r['device_id']}/{r['certificate_id']}"


def rebuild(conn: Any, report: AuditReport) -> tuple[dict[str, dict[str, Any]],
                                                    dict[int, dict[str, Any]]]:
    """Rows the log's decisions make: certificates by device/certificate, surveys by id."""
    out: dict[str, dict[str, Any]] = {}
    surveys: dict[int, dict[str, Any]] = {}
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
            if isinstance(e, entry_mod.Decision) and e.decision == "calibration":
                row = {f: e.body[f] for f in _FIELDS}
                row.update(actor=e.actor, recorded_ms=e.time_ms, key=_key(row))
                out[row["key"]] = row
            elif isinstance(e, entry_mod.Decision):
                b = e.body
                surveys[b["survey_id"]] = {"id": b["survey_id"], "lot_id": b["lot_id"],
                                           "kg": b["kg"], "surveyor": b["surveyor"],
                                           "actor": e.actor, "time_ms": e.time_ms}
        except (EntryFormatError, KeyError, TypeError) as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a calibration or draft_survey decision does "
                                f"not replay: {exc}"))
    return out, surveys


def audit_calibration(conn: Any, report: AuditReport) -> None:
    """Check ``calibrations`` and ``draft_surveys`` against the log (adds to ``report``)."""
    certificates, surveys = rebuild(conn, report)
    stored = [{**r, "key": _key(r)} for r in rows.all_calibrations(conn)]
    compare("calibrations", "key", certificates, stored, report)
    compare("draft_surveys", "id", surveys, balance_rows.all_draft_surveys(conn), report)
