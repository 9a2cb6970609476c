"""Calibration certificates on a real store: recording with its ledger decision, validity
at a time, what is due, refusals, and the audit rebuilding the table from the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from controller import calibration
from controller.audit import audit_store
from controller.errors import Conflict, InvalidInput, UnknownDevice
from controller.ledger import entries
from controller.storage import Store, ledger_log

DAY = 86_400_000
T0 = 1_764_000_000_000


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(dict(e.body))
    return out


def _add(db: Store, cert: str = "C-1", issued: int = T0, days: int = 365,
         **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"certificate_id": cert, "accuracy_class": "III", "e_kg": 20,
                            "issued_ms": issued, "expires_ms": issued + days * DAY,
                            "issuer": "Liaoning metrology institute", "actor": "cli:ann"}
    args.update(kw)
    return calibration.add(db, "wb-1", **args)


def test_calibration_valid_at_window_edges_and_ledger(db: Store,
                                                      device: dict[str, Any]) -> None:
    row = _add(db, days=10)
    assert calibration.status_at(db.conn, "wb-1", T0 - 1) == calibration.EXPIRED
    assert calibration.valid_at(db.conn, "wb-1", T0)  # from issue, inclusive
    assert calibration.valid_at(db.conn, "wb-1", T0 + 10 * DAY - 1)
    assert not calibration.valid_at(db.conn, "wb-1", T0 + 10 * DAY)  # expiry exclusive
    assert calibration.certificate(db.conn, "wb-1", T0)["certificate_id"] == "C-1"
    assert _decisions(db, "calibration") == [
        {k: v for k, v in row.items() if k not in ("actor", "recorded_ms")}]


def test_calibration_untracked_device_is_not_valid_but_told_apart(
        db: Store, device: dict[str, Any]) -> None:
    assert not calibration.valid_at(db.conn, "wb-1", T0)
    assert calibration.status_at(db.conn, "wb-1", T0) == calibration.UNTRACKED


def test_calibration_renewal_covers_the_gap_latest_issued_wins(
        db: Store, device: dict[str, Any]) -> None:
    _add(db, "C-1", days=10)
    _add(db, "C-2", issued=T0 + 9 * DAY, days=365)
    assert calibration.certificate(db.conn, "wb-1", T0 + 9 * DAY)["certificate_id"] == "C-2"
    assert calibration.valid_at(db.conn, "wb-1", T0 + 100 * DAY)


def test_calibration_due_within_days_lists_last_certificate(
        db: Store, device: dict[str, Any]) -> None:
    _add(db, "C-1", days=10)
    _add(db, "C-2", issued=T0 + 5 * DAY, days=30)  # the device's last: expires T0+35d
    assert calibration.due(db.conn, within_days=30, now=T0) == []
    due = calibration.due(db.conn, within_days=36, now=T0)
    assert [r["certificate_id"] for r in due] == ["C-2"]
    assert len(calibration.due(db.conn, within_days=None, now=T0)) == 2


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"accuracy_class": "IV"}, "class"), ({"e_kg": None}, "e_kg"),
     ({"certificate_id": "a b"}, "certificate id"), ({"days": 0}, "expire after"),
     ({"issuer": " "}, "issuer"), ({"days": 4000}, "ten years")],
)
def test_calibration_bad_input_refused_nothing_written(
        db: Store, device: dict[str, Any], kw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _add(db, **kw)
    assert _decisions(db, "calibration") == []


def test_calibration_rail_class_without_e_accepted(db: Store, device: dict[str, Any]) -> None:
    assert _add(db, accuracy_class="0.5", e_kg=None)["accuracy_class"] == "0.5"


def test_calibration_twice_conflict_unknown_device_refused(
        db: Store, device: dict[str, Any]) -> None:
    _add(db)
    with pytest.raises(Conflict, match="already recorded"):
        _add(db)
    with pytest.raises(UnknownDevice, match="not registered"):
        calibration.add(db, "wb-9", certificate_id="X", accuracy_class="III", e_kg=20,
                        issued_ms=T0, expires_ms=T0 + DAY, issuer="x", actor="a")
    assert len(_decisions(db, "calibration")) == 1


def test_calibration_audit_names_edited_and_added_rows(db: Store,
                                                       device: dict[str, Any]) -> None:
    _add(db)
    assert not [m for m in audit_store(db.conn).mismatches if m.table == "calibrations"]
    db.conn.execute("UPDATE calibrations SET expires_ms=expires_ms+? WHERE certificate_id=?",
                    [365 * DAY, "C-1"])
    db.conn.execute("INSERT INTO calibrations VALUES ('wb-1','FAKE','III',20,0,1,'x','y',0)")
    found = {(m.table, m.key, m.problem) for m in audit_store(db.conn).mismatches
             if m.table == "calibrations"}
    assert found == {("calibrations", "wb-1/C-1", "edited"),
                     ("calibrations", "wb-1/FAKE", "added")}
