"""Backward and forward trace over a scripted store (tests/controller/trace/trace_store.py):
each node's ledger entries and their inclusion proofs verify against the signed
checkpoint offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller import trace
from controller.errors import InvalidInput, NotFound
from controller.ledger import proofs
from controller.storage import Store

from .trace_store import scripted


def _all_proofs(node: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(node, dict):
        out += node.get("proofs", []) if isinstance(node.get("proofs"), list) else []
        for v in node.values():
            if isinstance(v, dict | list):
                out += _all_proofs(v)
    elif isinstance(node, list):
        for v in node:
            out += _all_proofs(v)
    return out


def test_trace_backward_from_trip_reaches_lot_with_proofs(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    got = trace.backward(db.conn, trip=story["trips"][0])
    start = got["start"]
    assert start["lot"] == "LOT-A" and start["net_kg"] == 30120
    assert start["proofs"] and {p["kind"] for p in start["proofs"]} == {"trip"}
    assert start["order"]["proofs"][0]["kind"] == "order"
    # the weighing is the custody event wb-out seq 1 and its gate decision
    assert start["weighing"]["net_kg"] == 30120
    assert {p["kind"] for p in start["weighing"]["proofs"]} == {"device_message"}
    lot = got["lot"]
    assert lot["id"] == "LOT-A"
    assert {p["kind"] for p in lot["proofs"]} >= {"hold", "release"}
    # only the lot's own decisions: its trips' orders and departures prove the trips
    assert not {p["kind"] for p in lot["proofs"]} & {"order", "trip", "gate"}
    assert [h["released_by"] for h in lot["holds"]] == ["cli:bob"]
    if story["lots_built"]:
        assert lot["vessel"] == "MV Ocean Star" and lot["declaration_no"] == "DEC-LOT-A"
        assert [h["status"] for h in lot["history"]][:3] == ["declared", "unloading",
                                                          "stored"]
    every = _all_proofs(got)
    assert len(every) >= 5
    for p in every:
        assert p["inclusion"]["checkpoint"] is not None  # all under the signed checkpoint
        assert proofs.check(p["inclusion"], None) == []
        assert p["entry_hash"] == bytes.fromhex(p["entry_hash"]).hex()


def test_trace_backward_from_weighing_equals_its_trip(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    got = trace.backward(db.conn, weighing="wb-out:2")
    assert got["start"]["trip"]["id"] == story["trips"][1]
    assert got["lot"]["id"] == "LOT-A"


def test_trace_backward_through_blend_to_every_input(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    if not story["blends_built"]:
        pytest.skip("blends are not in this tree's schema yet")
    got = trace.backward(db.conn, trip=story["blend_trip"])
    inputs = {i["lot"]["id"]: i for i in got["lot"]["blend_inputs"]}
    assert set(inputs) == {"LOT-A", "LOT-B"}
    assert inputs["LOT-A"]["fraction"] == pytest.approx(0.75)
    assert inputs["LOT-A"]["lot"]["proofs"]  # the input lot's own decisions are proved


def test_trace_forward_from_lot_lists_trips_and_blends(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    got = trace.forward(db.conn, "LOT-A")
    assert [t["id"] for t in got["lot"]["trips"]] == story["trips"]
    assert got["totals"]["truck_kg_by_destination"] == {"dest-feed-mill": 60000}
    if story["blends_built"]:
        blended = got["lot"]["blended_into"]
        assert [b["lot"]["id"] for b in blended] == ["LOT-AB"]
        assert [t["net_kg"] for t in blended[0]["lot"]["trips"]] == [25000]


def test_trace_rail_car_back_and_forward(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    if not story["rail_built"]:
        pytest.skip("the rail yard is not in this tree's schema yet")
    (car,) = trace.forward(db.conn, "LOT-A")["lot"]["cars"]
    assert car["id"] == "DLCX1234" and car["net_kg"] == 61000 and car["train_id"] == "T-1"
    assert {p["kind"] for p in car["proofs"]} == {"train"}
    got = trace.backward(db.conn, car="DLCX1234")
    assert got["lot"]["id"] == "LOT-A" and got["start"]["proofs"]
    with pytest.raises(NotFound):
        trace.backward(db.conn, car="DLCX9")


def test_trace_without_paths_keeps_indexes_and_hashes(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    full = trace.backward(db.conn, trip=story["trips"][0])
    light = trace.backward(db.conn, trip=story["trips"][0], paths=False)
    assert [(p["leaf_index"], p["entry_hash"], p["kind"]) for p in _all_proofs(light)] == [
        (p["leaf_index"], p["entry_hash"], p["kind"]) for p in _all_proofs(full)]
    assert all("inclusion" not in p for p in _all_proofs(light))


def test_trace_forward_unknown_lot_and_bad_refs_are_clear(db: Store, db_path: Path) -> None:
    scripted(db, db_path)
    with pytest.raises(NotFound, match="not recorded"):
        trace.forward(db.conn, "LOT-NONE")
    with pytest.raises(InvalidInput, match="DEVICE:SEQ"):
        trace.backward(db.conn, weighing="wb-out")
    with pytest.raises(InvalidInput, match="exactly one"):
        trace.backward(db.conn, trip="x", car="y")
    with pytest.raises(NotFound):
        trace.backward(db.conn, sample="lab-1:9")


def test_trace_proof_fails_on_changed_entry(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    p = trace.backward(db.conn, trip=story["trips"][0])["start"]["proofs"][0]["inclusion"]
    p = dict(p, leaf_index=p["leaf_index"] + 1)
    assert proofs.check(p, None)


def test_trace_backward_from_lab_sample_to_unloading_lot(db: Store, db_path: Path) -> None:
    """A signed sample event through the real ingest: the lab's sample_lot decision ties
    it to the lot unloading at its sampling time; the trace and the EPCIS export follow."""
    from controller import epcis, registry
    from controller.ingest.verify import check_message
    from controller.ingest.writer import commit_batch
    from controller.storage import trace_reads
    from controller.supervision.runner import Runner
    from ctl_helpers import SITE, signed

    from .trace_store import MIN, T0
    story = scripted(db, db_path)
    if not (story["lots_built"] and trace_reads.has_table(db.conn, "sample_lots")):
        pytest.skip("lots or lab samples are not in this tree's schema yet")
    lab = registry.provision(db, device_id="lab-1", site=SITE, kind="lab")
    at = T0 - 75 * MIN  # LOT-A is unloading from T0-80 to T0-70 min
    body = {"sample_id": "S-1", "sampled_ts": at, "moisture_pm": 131, "basis": "wet",
            "protein_pm": 120, "impurity_pm": 9, "test_weight_g_per_l": 780,
            "calibration_id": "CAL-1", "outlier": False, "findings": []}
    commit_batch(db.conn, [check_message(signed(lab, seq=1, kind="sample", body=body, ts=at),
                                         site=SITE, keys=registry.secrets_by_device(db))],
                 supervise=Runner())
    got = trace.backward(db.conn, sample="lab-1:1")
    assert got["lot"]["id"] == "LOT-A"
    # the sample event and the controller's decision tying it to the lot
    assert {p["kind"] for p in got["start"]["proofs"]} == {"device_message", "sample_lot"}
    doc = epcis.document(db.conn, "LOT-A", now_ms=T0)
    (s,) = [e for e in doc["epcisBody"]["eventList"] if e.get("bizStep") == "sampling"]
    values = {r["value"] for r in s["sensorElementList"][0]["sensorReport"]}
    assert values == {131.0, 120.0, 9.0, 780.0}
