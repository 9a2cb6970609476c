"""The audit of calibration certificates: the ``calibrations`` table rebuilt from the
ledger's ``calibration`` decisions and compared row by row (edited, deleted, added), as
controller/audit_gate.py does for holds."""

from __future__ import annotations

from typing import Any

from controller.audit import AuditReport, Mismatch
from controller.audit_trips import compare
from controller.ledger import entries as entry_mod
from controller.ledger.errors import EntryFormatError
from controller.storage import audit_reads
from controller.storage import calibrations as rows

KINDS = ("calibration",)
_FIELDS = ("device_id", "certificate_id", "accuracy_class", "e_kg", "issued_ms",
           "expires_ms", "issuer")


def _key(r: dict[str, Any]) -> str:
    return f"{r['device_id']}/{r['certificate_id']}"


def rebuild(conn: Any, report: AuditReport) -> dict[str, dict[str, Any]]:
    """Rows the log's ``calibration`` decisions make, by device/certificate."""
    out: dict[str, dict[str, Any]] = {}
    for idx, data in audit_reads.decisions(conn, KINDS):
        try:
            e = entry_mod.decode(data)
            if isinstance(e, entry_mod.Decision):
                row = {f: e.body[f] for f in _FIELDS}
                row.update(actor=e.actor, recorded_ms=e.time_ms, key=_key(row))
                out[row["key"]] = row
        except (EntryFormatError, KeyError, TypeError) as exc:
            report.add(Mismatch("ledger_entries", str(idx), "ledger",
                                detail=f"a calibration decision does not replay: {exc}"))
    return out


def audit_calibration(conn: Any, report: AuditReport) -> None:
    """Check ``calibrations`` against the log (adds to ``report``)."""
    stored = [{**r, "key": _key(r)} for r in rows.all_calibrations(conn)]
    compare("calibrations", "key", rebuild(conn, report), stored, report)
