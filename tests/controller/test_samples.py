"""Lab samples through the real ingest (signed envelopes, commit_batch, the rule runner)
into a real SQLite store: each tied to the lot unloading at its sampling time, a
quarantine weed holding the lot in the same transaction, limits per commodity, a sample
with no lot or an uncalibrated analyzer flagged, a re-sent result judged once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from controller import lots, registry, samples
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log
from controller.supervision.findings import Hold
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed
from protocols import labline

T0 = 1796083200000  # 2026-12-01T00:00:00Z
LOT = "LOT-S-0001"
WEED = [["Ambrosia artemisiifolia", 3, 1000]]
CAL_CLASS = "analyzer"  # controller/calibration.py CLASSES


@pytest.fixture
def lab(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="lab-1", site=SITE, kind="lab", driver={})


def _declare(db: Store, lot: str = LOT, commodity: str = "soybeans", at: int = T0) -> None:
    lots.declare(db, {"lot_id": lot, "declaration_no": "DL-1", "commodity": commodity,
                      "hs_code": "120190", "origin_country": "BR", "vessel": "MV Test",
                      "declared_kg": 50_000_000, "kind": "grain"}, actor="test", at_ms=at)
    lots.change_status(db, lot, "unloading", reason="at berth-1", actor="test",
                       at_ms=at + 1000)


def _sample(lab: Mapping[str, Any], seq: int, sid: str, minute: int, *,
            findings: list[list[Any]] | None = None, moisture_pm: int = 125,
            impurity_pm: int = 8, outlier: bool = False) -> Any:
    line = labline.build(sid, f"2026-12-01T00:{minute:02d}:00Z", moisture_pm,  # type: ignore[no-untyped-call]
                         "wet", 350, impurity_pm, 720, "CAL-1", outlier, findings or [])
    body: dict[str, Any] = labline.parse(line)  # type: ignore[no-untyped-call]
    return signed(dict(lab), seq=seq, kind="sample", body=body, ts=body["sampled_ts"],
                  received_ms=body["sampled_ts"] + 500)


def _commit(db: Store, *msgs: Any) -> Any:
    keys = registry.secrets_by_device(db)
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                        supervise=Runner())


def _alerts(db: Store) -> list[tuple[str, str]]:
    return sorted((a["code"], a["subject"]) for a in db.db["alerts"].rows)


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _h in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(e.body)
    return out


def test_samples_tied_to_the_lot_unloading_at_sampling_time(db: Store,
                                                            lab: dict[str, Any]) -> None:
    _commit(db, _sample(lab, 1, "S-0", 0))  # before the lot unloads: no lot
    _declare(db, at=T0 + 60_000)
    _commit(db, _sample(lab, 2, "S-1", 5), _sample(lab, 3, "S-2", 6))
    got = samples.list_samples(db.conn, limit=10)
    assert [(s["sample_id"], s["lot_id"]) for s in got] == [
        ("S-2", LOT), ("S-1", LOT), ("S-0", None)]
    assert [s["sample_id"] for s in samples.list_samples(db.conn, lot=LOT)] == ["S-2", "S-1"]
    assert got[0]["moisture_pm"] == 125 and got[0]["findings"] == []
    # the analyzer has no certificate on file: not judged (null), no lab_uncalibrated
    assert _alerts(db) == [("sample_without_lot", "S-0")]
    assert {s["calibration_valid"] for s in got} == {None}
    assert [d["lot_id"] for d in _decisions(db, "sample_lot")] == [None, LOT, LOT]


def test_samples_quarantine_weed_holds_the_lot_in_the_same_batch(db: Store,
                                                                 lab: dict[str, Any]) -> None:
    from controller import holds

    _declare(db)
    _commit(db, _sample(lab, 1, "S-1", 5))
    assert holds.list_holds(db, lot=LOT) == []
    result = _commit(db, _sample(lab, 2, "S-2", 6, findings=WEED))
    assert result.stored == 1
    [held] = holds.list_holds(db, lot=LOT)
    assert (held["kind"], held["actor"]) == ("quarantine", "rule:quarantine")
    assert "Ambrosia artemisiifolia" in held["reason"]
    [alert] = [a for a in db.db["alerts"].rows if a["code"] == "quarantine_finding"]
    assert (alert["severity"], alert["subject"]) == ("critical", LOT)
    assert json.loads(alert["detail_json"])["species"] == ["Ambrosia artemisiifolia"]
    assert lots.get_lot(db.conn, LOT)["status"] == "held"  # type: ignore[index]
    # the same weed in the next sample: the lot is held but still on the unloading line
    # (controller.lots.lot_unloading_at), so the sample is its own; the lot keeps its one
    # hold and its one active quarantine alert
    _commit(db, _sample(lab, 3, "S-3", 7, findings=WEED))
    assert len(holds.list_holds(db, lot=LOT)) == 1
    assert [a["subject"] for a in db.db["alerts"].rows
            if a["code"] == "quarantine_finding"] == [LOT]
    assert ("sample_without_lot", "S-3") not in _alerts(db)


def test_samples_over_the_commodity_limit_alert(db: Store, lab: dict[str, Any]) -> None:
    _declare(db, commodity="soybeans")  # 13.0 % moisture, 2.0 % impurity
    _commit(db, _sample(lab, 1, "S-ok", 5, moisture_pm=130, impurity_pm=20),
            _sample(lab, 2, "S-wet", 6, moisture_pm=131),
            _sample(lab, 3, "S-dirty", 7, impurity_pm=25),
            _sample(lab, 4, "S-odd", 8, moisture_pm=300, outlier=True))
    assert _alerts(db) == [("impurity_over_limit", "S-dirty"), ("lab_outlier", "S-odd"),
                           ("moisture_over_limit", "S-wet")]


def test_samples_outside_the_analyzers_certificate_are_flagged(db: Store,
                                                               lab: dict[str, Any]) -> None:
    from controller import calibration

    _declare(db)
    # a certificate that ran out at minute 6 of the day
    calibration.add(db, "lab-1", certificate_id="LAB-CAL-1", accuracy_class=CAL_CLASS,
                    e_kg=None, issued_ms=T0 - 86_400_000, expires_ms=T0 + 6 * 60_000,
                    issuer="test lab", actor="test", at_ms=T0)
    _commit(db, _sample(lab, 1, "S-in", 5), _sample(lab, 2, "S-out", 7))
    got = {s["sample_id"]: s["calibration_valid"] for s in samples.list_samples(db.conn)}
    assert got == {"S-in": True, "S-out": False}
    [alert] = [a for a in db.db["alerts"].rows if a["code"] == "lab_uncalibrated"]
    assert json.loads(alert["detail_json"])["sample_id"] == "S-out"


def test_samples_resent_result_under_a_new_seq_is_judged_once(db: Store,
                                                              lab: dict[str, Any]) -> None:
    from controller import holds

    _declare(db)
    _commit(db, _sample(lab, 1, "S-1", 5, findings=WEED, moisture_pm=200))
    # a power cut between storing and remembering: the agent sends it again as seq 2
    _commit(db, _sample(lab, 2, "S-1", 5, findings=WEED, moisture_pm=200))
    assert [s["seq"] for s in samples.list_samples(db.conn)] == [1]
    assert [d["duplicate_of_seq"] for d in _decisions(db, "sample_lot")] == [None, 1]
    assert len(holds.list_holds(db, lot=LOT)) == 1
    assert [a["code"] for a in db.db["alerts"].rows].count("moisture_over_limit") == 1


def test_samples_hold_finding_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="hold kind"):
        Hold("LOT-1", "weeds", "reason")


def test_samples_audit_clean_then_names_edited_rows(db: Store, lab: dict[str, Any]) -> None:
    from controller.audit import audit_store

    _declare(db)
    _commit(db, _sample(lab, 1, "S-1", 5), _sample(lab, 2, "S-2", 6, findings=WEED))
    assert audit_store(db.conn).clean
    # the lot a sample was tied to, and a figure the analyzer sent, edited behind the log
    db.conn.execute("UPDATE sample_lots SET lot_id='LOT-OTHER' WHERE seq=1")
    db.conn.execute("UPDATE samples SET moisture_pm=99 WHERE seq=2")
    report = audit_store(db.conn)
    named = {(m.table, m.key, m.problem) for m in report.mismatches}
    assert ("sample_lots", "lab-1/1", "edited") in named
    assert any(t == "samples" and k == "edited" for t, _, k in named), named


def test_samples_audit_of_new_entries_names_an_edited_sample_lot(
        db: Store, lab: dict[str, Any]) -> None:
    from controller.audit import Replay, audit_new

    _declare(db)
    start = ledger_log.size(db.conn)
    _commit(db, _sample(lab, 1, "S-1", 5))
    report, _ = audit_new(db.conn, start, Replay.load(db.conn))
    assert report.clean
    db.conn.execute("UPDATE sample_lots SET lot_id=NULL WHERE seq=1")
    report, _ = audit_new(db.conn, start, Replay.load(db.conn))
    assert [(m.table, m.key, m.problem) for m in report.mismatches] == [
        ("sample_lots", "lab-1/1", "edited")]
