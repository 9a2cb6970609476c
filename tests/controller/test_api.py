"""The REST API over a real SQLite store: auth, devices, weighings, ingest figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller import auth, registry
from controller.api.app import create_app
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import Store
from ctl_helpers import SITE, signed, weighing_body


@pytest.fixture
def client(db_path: Path, db: Store) -> TestClient:
    return TestClient(create_app(db_path=db_path, site=SITE))


def _bearer(db: Store, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=role, role=role)}


def test_api_without_token_is_401_and_bad_token_is_401(client: TestClient) -> None:
    assert client.get("/api/v1/devices").status_code == 401
    r = client.get("/api/v1/devices", headers={"Authorization": "Bearer pwt_nope"})
    assert r.status_code == 401


def test_api_provisioning_needs_admin(client: TestClient, db: Store) -> None:
    body = {"device_id": "wb-9", "kind": "weighbridge"}
    for role in ("operator", "auditor"):
        r = client.post("/api/v1/devices", json=body, headers=_bearer(db, role))
        assert r.status_code == 403
    r = client.post("/api/v1/devices", json=body, headers=_bearer(db, "admin"))
    assert r.status_code == 201, r.text
    cfg = r.json()["config"]
    assert cfg["device_id"] == "wb-9" and len(cfg["secret_hex"]) == 64
    assert cfg["mqtt"]["password"]
    again = client.post("/api/v1/devices", json=body, headers=_bearer(db, "admin"))
    assert again.status_code == 409


def test_api_rejects_bad_device_input_with_422(client: TestClient,
                                               db: Store) -> None:
    h = _bearer(db, "admin")
    for body in ({"device_id": "a/b", "kind": "weighbridge"}, {"device_id": "x", "kind": "toaster"},
                 {"kind": "weighbridge"}):
        assert client.post("/api/v1/devices", json=body, headers=h).status_code == 422, body


def test_api_lists_devices_and_weighings(client: TestClient, db: Store,
                                         device: dict[str, Any]) -> None:
    keys = registry.secrets_by_device(db)
    msgs = [signed(device, seq=i, body=weighing_body(30000 + 20 * i, plate=f"辽B0000{i}"))
            for i in (1, 2, 3)]
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])
    h = _bearer(db, "operator")
    devices = client.get("/api/v1/devices", headers=h).json()
    assert [(d["device_id"], d["committed_seq"]) for d in devices] == [("wb-1", 3)]
    all_w = client.get("/api/v1/weighings", headers=h).json()
    assert sorted(w["gross_kg"] for w in all_w) == [30020, 30040, 30060]
    one = client.get("/api/v1/weighings", params={"plate": "辽B00002"}, headers=h).json()
    assert [w["seq"] for w in one] == [2]
    assert client.get("/api/v1/weighings/wb-1/3", headers=h).json()["net_kg"] == 15060
    assert client.get("/api/v1/weighings/wb-1/9", headers=h).status_code == 404
    assert client.get("/api/v1/weighings", params={"limit": 0}, headers=h).status_code == 422


def test_api_ingest_stats_count_rejections(client: TestClient, db: Store,
                                           device: dict[str, Any]) -> None:
    keys = registry.secrets_by_device(db)
    m = signed(device, seq=1)
    commit_batch(db.conn, [check_message(x, site=SITE, keys=keys) for x in (m, m)])
    stats = client.get("/api/v1/ingest/stats", headers=_bearer(db, "auditor")).json()
    assert stats["stored_weighings"] == 1
    assert stats["rejected_by_reason"] == {"duplicate": 1}
    rej = client.get("/api/v1/ingest/rejections", headers=_bearer(db, "auditor")).json()
    assert [r["reason"] for r in rej] == ["duplicate"]


def test_healthz_needs_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json()["ok"] is True
    assert client.get("/openapi.json").status_code == 200


def test_api_reports_missing_ranges_and_admin_declares_them_lost(
        client: TestClient, db: Store, device: dict[str, Any]) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(signed(device, seq=s), site=SITE, keys=keys)
                           for s in (1, 2, 6)])
    h = _bearer(db, "operator")
    d = client.get("/api/v1/devices/wb-1", headers=h).json()
    assert (d["committed_seq"], d["missing"], d["lost"]) == (2, [[3, 5]], [])
    body = {"first_seq": 3, "last_seq": 5, "reason": "flash replaced"}
    assert client.post("/api/v1/devices/wb-1/lost", json=body, headers=h).status_code == 403
    r = client.post("/api/v1/devices/wb-1/lost", json=body, headers=_bearer(db, "admin"))
    assert r.status_code == 200, r.text
    assert (r.json()["committed_seq"], r.json()["missing"], r.json()["lost"]) == (6, [], [[3, 5]])
    again = client.post("/api/v1/devices/wb-1/lost", json=body, headers=_bearer(db, "admin"))
    assert again.status_code == 409


def test_api_no_token_is_401_even_with_a_malformed_body(client: TestClient) -> None:
    r = client.post("/api/v1/devices", content=b"{not json",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_api_refuses_a_lost_range_past_what_the_device_has_numbered(
        client: TestClient, db: Store, device: dict[str, Any]) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(signed(device, seq=s), site=SITE, keys=keys)
                           for s in (1, 72)])
    body = {"first_seq": 73, "last_seq": 473571143889, "reason": "careless"}
    r = client.post("/api/v1/devices/wb-1/lost", json=body, headers=_bearer(db, "admin"))
    assert r.status_code == 409, r.text
    assert "up to 72" in r.text
    d = client.get("/api/v1/devices/wb-1", headers=_bearer(db, "auditor")).json()
    assert (d["committed_seq"], d["lost"]) == (1, [])
