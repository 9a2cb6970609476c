"""A careless admin is contained: inputs are bounded, reserved names refused, tokens expire
and are revoked, a bad token is 401 whatever it sends, and the store file is private.

Real SQLite stores in temp dirs, the real ASGI app, the real CLI.
"""

from __future__ import annotations

import importlib
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller import auth, broker_auth, registry
from controller.api.app import create_app
from controller.storage import Store, open_store
from ctl_helpers import SITE
from tools.cli import app as cli_app

Headers = dict[str, str]
MAX_BODY = 64 * 1024  # controller/api/gate.py MAX_BODY, the limit the README states


@pytest.fixture
def client(db_path: Path, db: Store, device: dict[str, Any]) -> TestClient:
    return TestClient(create_app(db_path=db_path, site=SITE), raise_server_exceptions=False)


@pytest.fixture
def admin(db: Store) -> Headers:
    return {"Authorization": "Bearer " + auth.create_token(db, name="admin", role="admin")}


def _json(headers: Headers) -> Headers:
    return {**headers, "content-type": "application/json"}


def _is_error_body(body: Any) -> bool:
    return (isinstance(body, dict) and isinstance(body.get("detail"), str)
            and isinstance(body.get("error"), str) and set(body) <= {"detail", "error", "errors"})


# --- bounds -------------------------------------------------------------------------

@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_grace_s_not_finite_is_422_not_500(client: TestClient, admin: Headers,
                                           value: bytes) -> None:
    r = client.post("/api/v1/devices/wb-1/rotate-key", headers=_json(admin),
                    content=b'{"grace_s": ' + value + b"}")
    assert r.status_code == 422, r.text
    assert _is_error_body(r.json()) and r.json()["errors"][0]["loc"] == ["body", "grace_s"]
    assert client.get("/api/v1/devices/wb-1", headers=admin).json()["key_id"] == "k1"


def test_a_long_description_is_refused_and_device_lists_stay_small(
        client: TestClient, admin: Headers) -> None:
    big = {"device_id": "wb-big", "kind": "weighbridge", "description": "x" * 10_000_000}
    r = client.post("/api/v1/devices", headers=admin, json=big)
    assert r.status_code == 413 and _is_error_body(r.json()), r.text[:300]
    over = {"device_id": "wb-big", "kind": "weighbridge", "description": "x" * 501}
    r = client.post("/api/v1/devices", headers=admin, json=over)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "description"]
    ok = {"device_id": "wb-ok", "kind": "weighbridge", "description": "x" * 500}
    assert client.post("/api/v1/devices", headers=admin, json=ok).status_code == 201
    listing = client.get("/api/v1/devices", headers=admin)
    assert [d["device_id"] for d in listing.json()] == ["wb-1", "wb-ok"]
    assert len(listing.content) < 5_000


def test_a_body_larger_than_the_limit_is_413_even_without_a_length(
        client: TestClient, admin: Headers) -> None:
    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to judge by
        yield b'{"reason": "'
        for _ in range(MAX_BODY // 1000 + 1):
            yield b"x" * 1000
        yield b'"}'

    r = client.post("/api/v1/devices/wb-1/decommission", headers=_json(admin), content=chunks())
    assert r.status_code == 413, r.text
    assert client.get("/api/v1/devices/wb-1", headers=admin).json()["decommissioned_ms"] is None


@pytest.mark.parametrize("query", ["limit=ten", "limit=1&limit=x", "limit=1.5", "limt=5",
                                   "device_id=" + "x" * 65])
def test_a_mistyped_query_is_422_in_the_one_error_shape(client: TestClient, admin: Headers,
                                                        query: str) -> None:
    r = client.get(f"/api/v1/weighings?{query}", headers=admin)
    assert r.status_code == 422 and _is_error_body(r.json()), (query, r.text)


def test_a_mistyped_body_value_is_refused_not_coerced(client: TestClient,
                                                      admin: Headers) -> None:
    for body in ({"grace_s": False}, {"grace_s": "60"}, {"grace_s": 60, "grace": 1}):
        r = client.post("/api/v1/devices/wb-1/rotate-key", headers=admin, json=body)
        assert r.status_code == 422 and _is_error_body(r.json()), (body, r.text)
    assert client.get("/api/v1/devices/wb-1", headers=admin).json()["key_id"] == "k1"


# --- reserved names -----------------------------------------------------------------

def test_a_reserved_broker_login_cannot_be_provisioned_by_api_or_cli(
        client: TestClient, admin: Headers, db_path: Path) -> None:
    r = client.post("/api/v1/devices", headers=admin,
                    json={"device_id": broker_auth.CONTROLLER_USER, "kind": "weighbridge"})
    assert r.status_code == 422 and "reserved" in r.json()["detail"], r.text
    out = CliRunner().invoke(cli_app, ["device", "add", broker_auth.CONTROLLER_USER,
                                       "--kind", "weighbridge", "--db", str(db_path),
                                       "--out", str(db_path.parent / "cfg.json")])
    assert out.exit_code == 1 and "reserved" in out.output, out.output
    with open_store(db_path) as db:
        assert registry.secrets_by_device(db).keys() == {"wb-1"}


def test_an_old_store_with_a_reserved_device_still_gets_broker_files_and_can_decommission_it(
        client: TestClient, admin: Headers, db: Store, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    broker_names = importlib.import_module("controller.broker_names")
    with monkeypatch.context() as old_code:  # provisioned before the rule existed
        old_code.setattr(broker_names, "RESERVED", frozenset())
        registry.provision(db, device_id=broker_auth.CONTROLLER_USER, site=SITE,
                           kind="weighbridge")
    skipped: list[str] = []
    with caplog.at_level(logging.WARNING, logger="controller.broker_auth"):
        passwd, _acl = broker_auth.write_files(db, site=SITE, out_dir=tmp_path / "b",
                                               skipped=skipped)
    users = [line.split(":")[0] for line in passwd.read_text().splitlines()]
    assert sorted(users) == [broker_auth.CONTROLLER_USER, "wb-1"]  # the site still works
    assert len(skipped) == 1 and "decommission" in skipped[0] and "reserved" in skipped[0]
    assert skipped[0] in caplog.text
    r = client.post(f"/api/v1/devices/{broker_auth.CONTROLLER_USER}/decommission",
                    headers=admin, json={"reason": "named like the controller"})
    assert r.status_code == 200 and r.json()["decommissioned_ms"], r.text
    skipped.clear()
    broker_auth.write_files(db, site=SITE, out_dir=tmp_path / "b", skipped=skipped)
    assert skipped == []


# --- tokens -------------------------------------------------------------------------

def test_a_token_can_expire_and_then_answers_401_saying_so(client: TestClient, admin: Headers,
                                                           db: Store) -> None:
    r = client.post("/api/v1/tokens", headers=admin,
                    json={"name": "night-shift", "role": "operator", "expires_in_s": 3600})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["expires_ms"] - created["created_ms"] == 3_600_000
    assert created["state"] == "live"
    shift = {"Authorization": "Bearer " + created["token"]}
    assert client.get("/api/v1/devices", headers=shift).status_code == 200
    # the hour passes (the store's clock is the controller's wall clock)
    db.conn.execute("UPDATE api_tokens SET expires_ms = 1 WHERE name = 'night-shift'")
    r = client.get("/api/v1/devices", headers=shift)
    assert r.status_code == 401 and "expired" in r.json()["detail"], r.text
    assert r.headers["www-authenticate"] == "Bearer"
    listed = {t["name"]: t for t in client.get("/api/v1/tokens", headers=admin).json()}
    assert listed["night-shift"]["state"] == "expired"
    assert all("token" not in t for t in listed.values())  # ids, never the secrets
    for bad in (0, 59, 10**10, -1, True):
        r = client.post("/api/v1/tokens", headers=admin,
                        json={"name": "x", "role": "operator", "expires_in_s": bad})
        assert r.status_code == 422, (bad, r.text)


def test_revoked_token_is_401_at_once_and_the_last_admin_needs_force(
        client: TestClient, admin: Headers) -> None:
    made = client.post("/api/v1/tokens", headers=admin,
                       json={"name": "control-room", "role": "operator"}).json()
    room = {"Authorization": "Bearer " + made["token"]}
    assert client.get("/api/v1/alerts", headers=room).status_code == 200
    r = client.delete(f"/api/v1/tokens/{made['token_id']}", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = client.get("/api/v1/alerts", headers=room)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    r = client.delete("/api/v1/tokens/admin", headers=admin)
    assert r.status_code == 409 and "last live admin" in r.json()["detail"], r.text
    assert client.get("/api/v1/tokens", headers=admin).status_code == 200
    r = client.delete("/api/v1/tokens/admin?force=true", headers=admin)
    assert r.status_code == 200
    assert client.get("/api/v1/tokens", headers=admin).status_code == 401


def test_token_cli_expires_revokes_with_force_and_lists(db_path: Path, db: Store) -> None:
    cli = CliRunner()
    r = cli.invoke(cli_app, ["token", "create", "--role", "admin", "--name", "ops",
                             "--expires-in", "90d", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert auth.role_of(db, r.output.strip()) == "admin"
    bad = cli.invoke(cli_app, ["token", "create", "--role", "admin", "--name", "x",
                               "--expires-in", "soon", "--db", str(db_path)])
    assert bad.exit_code == 1 and "90d" in bad.output
    listing = cli.invoke(cli_app, ["token", "list", "--db", str(db_path)],
                         env={"COLUMNS": "200"})
    assert "ops" in listing.output and "live" in listing.output
    kept = cli.invoke(cli_app, ["token", "revoke", "ops", "--db", str(db_path)])
    assert kept.exit_code == 1 and "last live admin" in kept.output
    gone = cli.invoke(cli_app, ["token", "revoke", "ops", "--force", "--db", str(db_path)])
    assert gone.exit_code == 0, gone.output
    assert auth.role_of(db, r.output.strip()) is None


# --- authentication before validation -----------------------------------------------

POSTS = ["/api/v1/devices", "/api/v1/devices/wb-1/rotate-key", "/api/v1/devices/wb-1/lost",
         "/api/v1/devices/wb-1/decommission", "/api/v1/alerts/1/ack", "/api/v1/tokens",
         "/api/v1/ledger/checkpoints"]


@pytest.mark.parametrize("token", ["pwt_bogus", "", "not-even-a-token"])
def test_a_bad_bearer_token_is_401_whatever_the_body_or_query(
        client: TestClient, db: Store, token: str) -> None:
    bogus = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    for url in POSTS:
        for body in (b"{not json", b'{"grace_s": NaN}', b"\xff\xfe", b"x" * (MAX_BODY + 1)):
            r = client.post(url, headers=bogus, content=body)
            assert r.status_code == 401 and _is_error_body(r.json()), (url, body[:10], r.text)
    r = client.get("/api/v1/weighings?limit=ten&limit=x", headers=bogus)
    assert r.status_code == 401, r.text


def test_an_expired_token_is_401_before_its_body_is_read(client: TestClient, db: Store) -> None:
    token = auth.create_token(db, name="temp", role="admin", expires_in_s=60)
    db.conn.execute("UPDATE api_tokens SET expires_ms = 1 WHERE name = 'temp'")
    r = client.post("/api/v1/devices", content=b"{not json",
                    headers={"Authorization": f"Bearer {token}",
                             "content-type": "application/json"})
    assert r.status_code == 401 and "expired" in r.json()["detail"], r.text


# --- the store file -----------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_store_and_its_companions_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "site" / "pw.db"
        with open_store(path, create=True) as store:
            registry.provision(store, device_id="wb-1", site=SITE, kind="weighbridge")
            broker_auth.controller_credentials(store)
            files = [p for p in tmp_path.joinpath("site").iterdir()]
            assert {p.name for p in files} >= {"pw.db", "pw.db-wal", "pw.db-shm"}
            assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        os.umask(old)


def test_a_world_readable_store_is_made_private_at_open_and_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pw.db"
    open_store(path, create=True).close()
    key = Path(str(path) + ".ledger-key.pem")
    key.write_text("not a real key")
    for p in (path, key):
        p.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="controller.storage.database"):
        open_store(path).close()
    assert _mode(path) == 0o600 and _mode(key) == 0o600
    assert "readable by others" in caplog.text and str(path) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="controller.storage.database"):
        open_store(path).close()
    assert "readable by others" not in caplog.text  # said once, when it was fixed


def test_the_stated_body_limit_is_the_gates() -> None:
    from controller.api import gate
    assert gate.MAX_BODY == MAX_BODY
