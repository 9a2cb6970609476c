"""The calibration and mass-balance API on a real store: record a certificate (admin only),
list what is due, a lot's balance and a draft survey; refusals with what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from controller import auth, lots
from controller.api.app import create_app
from controller.storage import Store, now_ms
from ctl_helpers import SITE

DAY = 86_400_000


def _headers(db: Store, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=role, role=role)}


def test_api_calibration_add_list_due_and_refusals(db_path: Path, db: Store,
                                                   device: dict[str, Any]) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    admin, operator = _headers(db, "admin"), _headers(db, "operator")
    now = now_ms()
    body = {"certificate_id": "C-1", "accuracy_class": "III", "e_kg": 20,
            "issued_ms": now - DAY, "expires_ms": now + 10 * DAY, "issuer": "metrology"}
    assert client.post("/api/v1/devices/wb-1/calibrations", json=body,
                       headers=operator).status_code == 403
    r = client.post("/api/v1/devices/wb-1/calibrations", json=body, headers=admin)
    assert r.status_code == 201 and r.json()["actor"] == "token:admin (admin)"
    assert client.post("/api/v1/devices/wb-1/calibrations", json=body,
                       headers=admin).status_code == 409
    bad = client.post("/api/v1/devices/wb-1/calibrations",
                      json={**body, "certificate_id": "C-2", "e_kg": None}, headers=admin)
    assert bad.status_code == 422 and "e_kg" in bad.json()["detail"]
    assert client.post("/api/v1/devices/nope/calibrations", json=body,
                       headers=admin).status_code == 404
    due = client.get("/api/v1/calibrations?due_within_days=11", headers=operator).json()
    assert [c["certificate_id"] for c in due] == ["C-1"]
    assert client.get("/api/v1/calibrations?due_within_days=9", headers=operator).json() == []


def test_api_balance_and_draft_survey(db_path: Path, db: Store) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    operator, auditor = _headers(db, "operator"), _headers(db, "auditor")
    assert client.get("/api/v1/lots/LOT-1/balance", headers=auditor).status_code == 404
    lots.declare(db, {"lot_id": "LOT-1", "declaration_no": "D-1", "commodity": "wheat",
                      "hs_code": "100199", "origin_country": "UA", "vessel": "MV T",
                      "declared_kg": 50_000, "kind": "grain"}, actor="test")
    r = client.get("/api/v1/lots/LOT-1/balance", headers=auditor)
    assert r.status_code == 200
    assert r.json()["unloaded"]["source"] == "declared" and r.json()["remaining_kg"] == 50_000
    assert client.post("/api/v1/lots/LOT-1/draft-survey", json={"kg": 50_100, "surveyor": "S"},
                       headers=auditor).status_code == 403
    r = client.post("/api/v1/lots/LOT-1/draft-survey", json={"kg": 50_100, "surveyor": "S"},
                    headers=operator)
    assert r.status_code == 201 and r.json()["draft_survey_kg"] == 50_100
    assert r.json()["unloaded"]["source"] == "draft_survey"
