"""Readings of an instrument out of calibration, through the real ingest writer and store:
stored and flagged ``out_of_calibration`` (replayed by the audit from the ``limits``
decision), and denied at the out-gate with ``scale_out_of_calibration``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from controller import calibration, registry
from controller.audit import audit_store
from controller.gate import DENY, OPEN, Scale, decide
from controller.gate_service import GateControl
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log
from ctl_helpers import SITE, signed, weighing_body

TS = 1764072000000  # ctl_helpers' device time
DAY = 86_400_000


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(dict(e.body))
    return out


def _certify(db: Store, issued: int, expires: int, cert: str = "C-1") -> None:
    calibration.add(db, "wb-1", certificate_id=cert, accuracy_class="III", e_kg=20,
                    issued_ms=issued, expires_ms=expires, issuer="metrology office",
                    actor="test")


def _weigh(db: Store, device: dict[str, Any], seq: int, ts: int = TS,
           gate: GateControl | None = None) -> None:
    commit_batch(db.conn, [check_message(signed(device, seq=seq, ts=ts, body=weighing_body(),
                                                received_ms=ts + 500),
                                         site=SITE, keys=registry.secrets_by_device(db))],
                 supervise=None if gate is None else gate.supervise)


def _flags(db: Store, seq: int) -> list[str]:
    row = db.conn.execute("SELECT flags_json FROM weighings WHERE device_id='wb-1' AND seq=?",
                          [seq]).fetchone()
    return list(json.loads(row[0]))


def test_calibration_decide_scale_out_of_calibration_denies() -> None:
    order = {"order_id": "o-1", "lot": "LOT-1", "window_start_ms": 0, "window_end_ms": 9,
             "expected_net_kg": 30000}
    w = {"plate": "辽B12345", "net_kg": 30000, "time_ms": 5}
    assert decide(w, order, None, Scale(e_kg=20)).action == OPEN
    d = decide(w, order, None, Scale(e_kg=20, out_of_calibration=True))
    assert d.action == DENY and [r.code for r in d.reasons] == ["scale_out_of_calibration"]


def test_calibration_reading_flagged_only_outside_certificate_and_audits_clean(
        db: Store, device: dict[str, Any]) -> None:
    _weigh(db, device, 1)  # no certificate on file: not judged
    _certify(db, TS - 10 * DAY, TS + DAY)
    _weigh(db, device, 2, ts=TS + DAY - 1)  # last ms of the certificate
    _weigh(db, device, 3, ts=TS + DAY)  # expired: stored and flagged
    assert _flags(db, 1) == [] and _flags(db, 2) == []
    assert _flags(db, 3) == ["out_of_calibration"]
    limits = [d for d in _decisions(db, "limits") if "calibration" in d]
    assert limits[-1]["calibration"] == [[TS - 10 * DAY, TS + DAY]]
    assert audit_store(db.conn).mismatches == []
    # the audit replays the flag: a cleared flag is an edit it names
    db.conn.execute("UPDATE weighings SET flags_json='[]' WHERE seq=3")
    assert [(m.table, m.problem) for m in audit_store(db.conn).mismatches] == [
        ("weighings", "edited")]


def _order(conn: sqlite3.Connection, plate: str, at_ms: int) -> dict[str, Any] | None:
    """An open order for any plate at any time (the gate's order lookup is not tested here)."""
    return {"order_id": "o-1", "lot": "LOT-1", "window_start_ms": 0,
            "window_end_ms": at_ms * 2, "expected_net_kg": 30240, "plate": plate}


def test_calibration_gate_denies_lapsed_scale_and_opens_certified_one(
        db: Store, device: dict[str, Any]) -> None:
    departed: list[str] = []
    gate = GateControl(gates=lambda: frozenset({"wb-1"}), find_order=_order,
                       depart=lambda conn, order_id, **kw: departed.append(order_id))
    _certify(db, TS - 10 * DAY, TS)  # expired at the weighing's device time
    _weigh(db, device, 1, gate=gate)
    (denied,) = _decisions(db, "gate")
    assert denied["action"] == "deny"
    assert [r["code"] for r in denied["reasons"]] == ["scale_out_of_calibration"]
    assert departed == []
    _certify(db, TS, TS + 365 * DAY, cert="C-2")  # renewed
    _weigh(db, device, 2, gate=gate)
    assert _decisions(db, "gate")[-1]["action"] == "open" and departed == ["o-1"]


def test_calibration_store_without_table_ingests_unjudged(
        db: Store, device: dict[str, Any]) -> None:
    """A schema-9 store made before the calibrations step (the table dropped here)."""
    db.conn.execute("DROP TABLE calibrations")
    _weigh(db, device, 1)
    assert _flags(db, 1) == []
