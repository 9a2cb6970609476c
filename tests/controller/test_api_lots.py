"""The lots API: declare (422 for a bad HS code or country, 409 for a taken id), list with
filters, show with history, holds and orders, status changes (409 naming the possible
statuses), and a quarantine hold released by two different release_officer tokens only
(real app, real SQLite store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller import auth
from controller.api.app import create_app
from controller.storage import Store
from ctl_helpers import SITE

LOT: dict[str, Any] = {
    "lot_id": "LOT-2026-0042", "declaration_no": "CN-DL-2026-118733", "commodity": "wheat",
    "hs_code": "100199", "origin_country": "UA", "vessel": "MV Star Pisces",
    "declared_kg": 52_000_000, "kind": "grain"}


@pytest.fixture
def client(db_path: Path, db: Store) -> TestClient:
    return TestClient(create_app(db_path=db_path, site=SITE))


def _bearer(db: Store, role: str, name: str | None = None) -> dict[str, str]:
    token = auth.create_token(db, name=name or role, role=role)
    return {"Authorization": "Bearer " + token}


def test_api_lots_declare_list_show_and_move(client: TestClient, db: Store) -> None:
    op = _bearer(db, "operator")
    r = client.post("/api/v1/lots", json=LOT, headers=op)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "declared" and r.json()["created_by"] == \
        "token:operator (operator)"
    client.post("/api/v1/lots", json={**LOT, "lot_id": "ORE-1", "kind": "ore",
                                      "vessel": "MV Iron"}, headers=op)
    assert [x["lot_id"] for x in client.get("/api/v1/lots?kind=ore", headers=op).json()] == \
        ["ORE-1"]
    r = client.post("/api/v1/lots/LOT-2026-0042/status", headers=op,
                    json={"status": "unloading", "reason": "berth-1 discharge"})
    assert r.status_code == 200 and r.json()["status"] == "unloading", r.text
    listed = client.get("/api/v1/lots?status=unloading", headers=op).json()
    assert [x["lot_id"] for x in listed] == ["LOT-2026-0042"]
    shown = client.get("/api/v1/lots/LOT-2026-0042", headers=_bearer(db, "auditor")).json()
    assert [h["status"] for h in shown["history"]] == ["declared", "unloading"]
    assert shown["history"][1]["reason"] == "berth-1 discharge"
    assert shown["next"] == ["stored"] and shown["holds"] == [] and shown["orders"] == []


def test_api_lot_status_impossible_is_409_saying_which_are_possible(
        client: TestClient, db: Store) -> None:
    op = _bearer(db, "operator")
    client.post("/api/v1/lots", json=LOT, headers=op)
    r = client.post("/api/v1/lots/LOT-2026-0042/status", headers=op,
                    json={"status": "released", "reason": "x"})
    assert r.status_code == 409
    assert "possible: anchorage_quarantine, unloading" in r.json()["detail"]
    r = client.post("/api/v1/lots/LOT-404/status", headers=op,
                    json={"status": "unloading", "reason": "x"})
    assert r.status_code == 404 and "declare it first" in r.json()["detail"]


@pytest.mark.parametrize(("field", "value"), [
    ("hs_code", "10A199"), ("hs_code", "123"), ("origin_country", "ZZ"),
    ("origin_country", "UKR"), ("declared_kg", -5), ("declared_kg", "5"), ("kind", "coal"),
    ("vessel", ""), ("lot_id", "LOT 1")])
def test_api_lot_declare_bad_input_is_422(client: TestClient, db: Store, field: str,
                                          value: Any) -> None:
    r = client.post("/api/v1/lots", json={**LOT, field: value}, headers=_bearer(db, "admin"))
    assert r.status_code == 422, r.text
    assert client.get("/api/v1/lots", headers=_bearer(db, "admin", "a2")).json() == []


def test_api_lot_declare_twice_is_409(client: TestClient, db: Store) -> None:
    op = _bearer(db, "operator")
    assert client.post("/api/v1/lots", json=LOT, headers=op).status_code == 201
    r = client.post("/api/v1/lots", json=LOT, headers=op)
    assert r.status_code == 409 and "already declared" in r.json()["detail"]


def test_api_quarantine_hold_released_by_two_different_release_officers(
        client: TestClient, db: Store) -> None:
    op, admin = _bearer(db, "operator"), _bearer(db, "admin")
    ann, ben = _bearer(db, "release_officer", "ann"), _bearer(db, "release_officer", "ben")
    client.post("/api/v1/lots", json=LOT, headers=op)
    client.post("/api/v1/lots/LOT-2026-0042/status", headers=op,
                json={"status": "unloading", "reason": "go"})
    r = client.post("/api/v1/lots/LOT-2026-0042/hold", headers=op,
                    json={"reason": "phytosanitary", "kind": "quarantine"})
    assert r.status_code == 201 and r.json()["kind"] == "quarantine", r.text
    hold_id = r.json()["id"]
    assert client.get("/api/v1/lots/LOT-2026-0042", headers=op).json()["status"] == "held"
    r = client.post("/api/v1/lots/LOT-2026-0042/release", headers=admin,
                    json={"reason": "admin alone"})
    assert r.status_code == 409 and "release officers" in r.json()["detail"]
    assert client.post(f"/api/v1/holds/{hold_id}/approve", headers=admin,
                       json={"reason": "x"}).status_code == 403
    r = client.post(f"/api/v1/holds/{hold_id}/approve", headers=ann, json={"reason": "lab ok"})
    assert r.status_code == 200 and r.json()["active"] and r.json()["needed"] == 1, r.text
    r = client.post(f"/api/v1/holds/{hold_id}/approve", headers=ann, json={"reason": "again"})
    assert r.status_code == 409 and "different release officer" in r.json()["detail"]
    r = client.post(f"/api/v1/holds/{hold_id}/approve", headers=ben, json={"reason": "cert"})
    assert r.status_code == 200 and not r.json()["active"], r.text
    assert r.json()["approvals"] == ["token:ann (release_officer)",
                                     "token:ben (release_officer)"]
    shown = client.get("/api/v1/lots/LOT-2026-0042", headers=op).json()
    assert shown["status"] == "unloading"
    assert shown["holds"][0]["needed"] == 0 and len(shown["holds"][0]["approvals"]) == 2


def test_api_manual_hold_keeps_admin_release(client: TestClient, db: Store) -> None:
    op, admin = _bearer(db, "operator"), _bearer(db, "admin")
    client.post("/api/v1/lots", json=LOT, headers=op)
    client.post("/api/v1/lots/LOT-2026-0042/hold", headers=op, json={"reason": "check"})
    assert client.post("/api/v1/lots/LOT-2026-0042/release", headers=op,
                       json={"reason": "x"}).status_code == 403
    r = client.post("/api/v1/lots/LOT-2026-0042/release", headers=admin, json={"reason": "ok"})
    assert r.status_code == 200 and r.json()["kind"] == "manual" and not r.json()["active"]
    assert client.get("/api/v1/lots/LOT-2026-0042", headers=op).json()["status"] == "declared"


def test_api_admin_creates_a_release_officer_token(client: TestClient, db: Store) -> None:
    r = client.post("/api/v1/tokens", headers=_bearer(db, "admin"),
                    json={"name": "customs-ann", "role": "release_officer"})
    assert r.status_code == 201, r.text
    assert auth.role_of(db, r.json()["token"]) == "release_officer"
