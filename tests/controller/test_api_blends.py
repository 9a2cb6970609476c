"""The blends and recall API over a real store: an operator blends two declared ore lots,
the blend is shown with its fractions, refused with 409/422 when it cannot be made, an
auditor cannot blend; a lot's recall list names the trucks of it and of its blend; after a
recall the whole store audits clean against its ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from controller import auth, lots, recall
from controller.api.app import create_app
from controller.audit import audit_store
from controller.storage import Store
from controller.storage import trips as trip_rows
from ctl_helpers import SITE

T0 = 1796083200000  # 2026-12-01T00:00:00Z
BLEND = {"blend_lot": "BL-1", "reason": "contract grade 62",
         "inputs": [{"lot": "ORE-A", "kg": 30000}, {"lot": "ORE-B", "kg": 10000}]}


@pytest.fixture
def client(db_path: Path, db: Store) -> TestClient:
    for lot, country in (("ORE-A", "AU"), ("ORE-B", "BR")):
        lots.declare(db, {"lot_id": lot, "declaration_no": f"D-{lot}",
                          "commodity": "iron ore", "hs_code": "260111",
                          "origin_country": country, "vessel": "MV Iron",
                          "declared_kg": 40_000_000, "kind": "ore"}, actor="t", at_ms=T0)
    return TestClient(create_app(db_path=db_path, site=SITE))


def _bearer(db: Store, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=role, role=role)}


def test_api_blends_create_show_and_refuse(client: TestClient, db: Store) -> None:
    op, auditor = _bearer(db, "operator"), _bearer(db, "auditor")
    assert client.post("/api/v1/blends", json=BLEND, headers=auditor).status_code == 403
    r = client.post("/api/v1/blends", json=BLEND, headers=op)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["actor"] == "token:operator (operator)" and made["origin"] == "blend"
    assert made["origins"] == ["AU", "BR"] and made["total_kg"] == 40000
    assert [(i["lot"], i["fraction"]) for i in made["inputs"]] == [("ORE-A", 0.75),
                                                                   ("ORE-B", 0.25)]
    assert client.get("/api/v1/blends/BL-1", headers=auditor).json() == made
    again = client.post("/api/v1/blends", json=BLEND, headers=op)
    assert again.status_code == 409 and "exists already" in again.json()["detail"]
    ghost = {**BLEND, "blend_lot": "BL-2", "inputs": [{"lot": "ORE-A", "kg": 1},
                                                      {"lot": "GHOST", "kg": 1}]}
    r = client.post("/api/v1/blends", json=ghost, headers=op)
    assert r.status_code == 422 and "not declared" in r.json()["detail"]
    one = {**BLEND, "blend_lot": "BL-3", "inputs": [{"lot": "ORE-A", "kg": 1}]}
    assert client.post("/api/v1/blends", json=one, headers=op).status_code == 422
    assert client.get("/api/v1/blends/ORE-A", headers=op).status_code == 404


def test_api_recall_list_and_store_audits_clean_after_a_recall(client: TestClient,
                                                               db: Store) -> None:
    op = _bearer(db, "operator")
    assert client.post("/api/v1/blends", json=BLEND, headers=op).status_code == 201
    for status in ("unloading", "stored"):
        r = client.post("/api/v1/lots/ORE-A/status", json={
            "status": status, "reason": "x", "released_before_test": status == "stored"},
            headers=op)
        assert r.status_code == (422 if status == "stored" else 200), r.text
        if status == "stored":
            assert "released_before_test is for an ore lot going to released" in r.text
            assert client.post("/api/v1/lots/ORE-A/status", json={
                "status": status, "reason": "x"}, headers=op).status_code == 200
    r = client.post("/api/v1/lots/ORE-A/status", json={
        "status": "released", "reason": "guarantee", "released_before_test": True}, headers=op)
    assert r.status_code == 200 and r.json()["released_before_test"] is True, r.text
    with db.transaction() as conn:
        for trip_id, lot, plate in (("o-1", "ORE-A", "AB1001"), ("o-2", "BL-1", "AB2002"),
                                    ("o-3", "ORE-B", "AB3003")):
            trip_rows.put_trip(conn, {
                "trip_id": trip_id, "tracker_id": "gps-1", "plate": plate, "lot": lot,
                "destination": "steel-mill", "corridor": "c1", "gate_device": "wb-out",
                "weighing_seq": 1, "net_kg": 30_000, "departed_ms": T0 + 60_000,
                "status": "in_transit", "arrived_ts": None, "closed_ms": None,
                "end_reason": None})
    r = client.get("/api/v1/lots/ORE-A/recall", headers=op)
    assert r.status_code == 200, r.text
    listed = r.json()
    assert [(t["plate"], t["via"]) for t in listed["trips"]] == [("AB1001", "ORE-A"),
                                                                 ("AB2002", "BL-1")]
    assert listed["cars"] == [] and listed["kg"] == {"trucks": 60000, "rail": 0}
    assert client.get("/api/v1/lots/NOPE/recall", headers=op).status_code == 404
    with db.transaction() as conn:
        made = recall.on_sample(conn, "ORE-A", {"fe_pm": 600}, device_id="lab-1",
                                device_ts=T0 + 90_000, received_ms=T0 + 91_000)
    assert made is not None and made["hash"] == listed["hash"]
    # the trips are scripted rows no trip decision made: the audit names them, and only them
    report = audit_store(db.conn)
    assert {(m.table, m.key) for m in report.mismatches} == {
        ("trips", "o-1"), ("trips", "o-2"), ("trips", "o-3")}, report.mismatches
