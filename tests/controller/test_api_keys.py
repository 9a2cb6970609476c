"""POST /api/v1/devices/{id}/rotate-key: admin only, a new key once, the rotation recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from controller import auth, registry
from controller.api.app import create_app
from controller.ingest.verify import Accepted, check_message
from controller.storage import Store
from ctl_helpers import SITE, signed

URL = "/api/v1/devices/wb-1/rotate-key"


def _bearer(db: Store, role: str, name: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=name or role, role=role)}


def test_api_rotate_key_needs_a_token_and_the_admin_role(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    assert client.post(URL, json={"grace_s": 60}).status_code == 401
    for role in ("operator", "auditor"):
        assert client.post(URL, json={"grace_s": 60}, headers=_bearer(db, role)).status_code == 403
    assert registry.get(db, "wb-1")["key_id"] == "k1"
    assert db.db["key_rotations"].count == 0


def test_api_rotate_key_returns_the_new_key_once_and_records_who(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    r = client.post(URL, json={"grace_s": 60}, headers=_bearer(db, "admin", "key-officer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["device_id"], body["old_key_id"], body["key_id"]) == ("wb-1", "k1", "k2")
    assert body["old_valid_until_ms"] == body["rotated_ms"] + 60_000
    current = registry.get(db, "wb-1")
    assert current["secret_hex"] == body["secret_hex"] != device["secret_hex"]
    v = check_message(signed(current, seq=1), site=SITE, keys=registry.secrets_by_device(db))
    assert isinstance(v, Accepted) and v.key_id == "k2"
    [record] = db.db["key_rotations"].rows
    assert record["actor"] == "token:key-officer (admin)"
    shown = client.get("/api/v1/devices/wb-1", headers=_bearer(db, "operator")).json()
    assert shown["key_id"] == "k2" and "secret_hex" not in shown


def test_api_rotate_key_unknown_device_404_and_bad_grace_422(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    h = _bearer(db, "admin")
    assert client.post("/api/v1/devices/wb-404/rotate-key", json={"grace_s": 1},
                       headers=h).status_code == 404
    assert client.post(URL, json={"grace_s": -1}, headers=h).status_code == 422
    default = client.post(URL, json={}, headers=h).json()
    assert default["old_valid_until_ms"] == default["rotated_ms"] + 3_600_000
