"""Every route of the API against every role: 401 without a token, 403 for the wrong role.

The matrix is generated from the app itself (its routes and its OpenAPI schema), and
each route must have a rule in ``RULES``: a new endpoint without one fails
``test_auth_matrix_covers_every_route`` until someone decides who may call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from controller import auth
from controller.api.app import create_app
from controller.storage import Store
from ctl_helpers import SITE

PUBLIC = None  # no token needed
READERS = frozenset({"operator", "auditor", "admin", "release_officer"})
ADMINS = frozenset({"admin"})
AUDITORS = frozenset({"auditor", "admin"})

# The one table: who may call what. Roles (controller/auth.py): operator reads and
# acknowledges alerts; auditor reads everything and exports; admin provisions devices,
# rotates keys, decommissions devices and manages tokens; release_officer reads and
# approves quarantine releases (two different ones release a quarantine hold).
RULES: dict[tuple[str, str], frozenset[str] | None] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/api/v1/devices"): READERS,
    ("POST", "/api/v1/devices"): ADMINS,
    ("GET", "/api/v1/devices/{device_id}"): READERS,
    ("GET", "/api/v1/devices/{device_id}/health"): READERS,
    ("POST", "/api/v1/devices/{device_id}/lost"): ADMINS,
    ("POST", "/api/v1/devices/{device_id}/rotate-key"): ADMINS,
    ("POST", "/api/v1/devices/{device_id}/device-key"): ADMINS,
    ("POST", "/api/v1/devices/{device_id}/decommission"): ADMINS,
    ("GET", "/api/v1/devices/{device_id}/config"): READERS,
    ("POST", "/api/v1/devices/{device_id}/config"): ADMINS,
    ("POST", "/api/v1/devices/{device_id}/restart"): ADMINS,
    ("GET", "/api/v1/alerts"): READERS,
    ("GET", "/api/v1/alerts/{alert_id}"): READERS,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): frozenset({"operator", "admin"}),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/tokens"): ADMINS,
    ("POST", "/api/v1/tokens"): ADMINS,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMINS,
    ("GET", "/api/v1/weighings"): READERS,
    ("GET", "/api/v1/weighings/{device_id}/{seq}"): READERS,
    ("GET", "/api/v1/alarms"): READERS,
    ("GET", "/api/v1/ingest/stats"): READERS,
    ("GET", "/api/v1/ingest/rejections"): READERS,
    ("GET", "/api/v1/ingest/rejection-counts"): READERS,
    ("GET", "/api/v1/ledger/checkpoint"): AUDITORS,
    ("POST", "/api/v1/ledger/checkpoints"): AUDITORS,
    ("GET", "/api/v1/ledger/proofs/inclusion"): AUDITORS,
    ("GET", "/api/v1/ledger/proofs/consistency"): AUDITORS,
    ("POST", "/api/v1/lots/{lot}/hold"): frozenset({"operator", "admin"}),
    ("POST", "/api/v1/lots/{lot}/release"): ADMINS,
    ("GET", "/api/v1/holds"): READERS,
    ("POST", "/api/v1/holds/{hold_id}/approve"): frozenset({"release_officer"}),
    ("POST", "/api/v1/lots"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/lots"): READERS,
    ("GET", "/api/v1/lots/{lot}"): READERS,
    ("POST", "/api/v1/lots/{lot}/status"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/offices"): READERS,
    ("POST", "/api/v1/offices"): ADMINS,
    ("POST", "/api/v1/offices/{office_id}/remove"): ADMINS,
    ("GET", "/api/v1/trips/{trip_id}/deliveries"): READERS,
    ("GET", "/api/v1/commands"): READERS,
    ("GET", "/api/v1/firmware/bundles"): ADMINS,
    ("GET", "/api/v1/firmware/rollouts"): ADMINS,
    ("GET", "/api/v1/firmware/rollouts/{rollout_id}"): ADMINS,
    ("POST", "/api/v1/firmware/rollouts"): ADMINS,
    ("POST", "/api/v1/orders"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/orders"): READERS,
    ("GET", "/api/v1/orders/{order_id}"): READERS,
    ("POST", "/api/v1/orders/{order_id}/cancel"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/trips"): READERS,
    ("GET", "/api/v1/trips/{trip_id}"): READERS,
    ("GET", "/api/v1/trips/{trip_id}/track"): READERS,
    ("POST", "/api/v1/blends"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/blends/{lot}"): READERS,
    ("GET", "/api/v1/lots/{lot}/recall"): READERS,
    ("POST", "/api/v1/devices/{device_id}/calibrations"): ADMINS,
    ("GET", "/api/v1/calibrations"): READERS,
    ("GET", "/api/v1/lots/{lot}/balance"): READERS,
    ("POST", "/api/v1/lots/{lot}/draft-survey"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/trace/backward"): READERS,
    ("GET", "/api/v1/trace/forward"): READERS,
    ("GET", "/api/v1/lots/{lot}/epcis"): READERS,
    ("GET", "/api/v1/samples"): READERS,
    ("GET", "/api/v1/lots/{lot}/samples"): READERS,
}

# the rail yard's train manifests (controller/api/routers/trains.py)
RULES.update({
    ("POST", "/api/v1/trains"): frozenset({"operator", "admin"}),
    ("GET", "/api/v1/trains"): READERS,
    ("GET", "/api/v1/trains/{train_id}"): READERS,
    ("POST", "/api/v1/trains/{train_id}/release"): frozenset({"operator", "admin"}),
})
# Prometheus scrapes with any role's token (`--metrics-public`: none; tests/controller/
# test_metrics.py); the Gate guards it like /api/
RULES[("GET", "/metrics")] = READERS
# devices' firmware downloads: no API token opens them, only a device's download token
# (controller/api/routers/firmware.py); checked by test_firmware_downloads_need_their_token
DEVICE_DOWNLOADS = {("GET", "/fw/{kind}/{version}/manifest.json"),
                    ("GET", "/fw/{kind}/{version}/manifest.sig"),
                    ("GET", "/fw/{kind}/{version}/files/{path:path}")}

# the operators' dashboard (controller/dashboard) and what it reads
RULES.update({
    ("GET", "/ui"): PUBLIC,  # a redirect to /ui/, static files that need no token
    ("GET", "/api/v1/whoami"): READERS,
    ("POST", "/api/v1/session"): READERS,
    ("DELETE", "/api/v1/session"): READERS,
    ("GET", "/api/v1/site"): READERS,
    ("GET", "/api/v1/gate-decisions"): READERS,
    ("GET", "/api/v1/positions/latest"): READERS,
    ("GET", "/api/v1/events"): READERS,
})
# query strings some routes are called with here: the event stream ends at once
QUERIES = {("GET", "/api/v1/events"): "?max_s=0"}

# Values for path parameters and bodies, so that an allowed caller gets past validation.
PATH_VALUES = {"device_id": "wb-1", "seq": "1", "alert_id": "1", "token_id": "no-such-token",
               "lot": "LOT-1", "trip_id": "ORD-1",
               "office_id": "no-such-office", "order_id": "ORD-1", "hold_id": "1"}
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/offices"): {"office_id": "off-matrix", "destinations": ["*"]},
    ("POST", "/api/v1/offices/{office_id}/remove"): {"reason": "matrix"},
    ("POST", "/api/v1/devices"): {"device_id": "wb-matrix", "kind": "weighbridge"},
    ("POST", "/api/v1/devices/{device_id}/lost"): {"first_seq": 5, "last_seq": 6,
                                                  "reason": "flash worn out"},
    ("POST", "/api/v1/devices/{device_id}/rotate-key"): {"grace_s": 60},
    ("POST", "/api/v1/devices/{device_id}/device-key"): {"pub": (  # a P-256 point (RFC 6979 A.2.5)
        "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
        "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299")},
    ("POST", "/api/v1/devices/{device_id}/decommission"): {"reason": "matrix"},
    ("POST", "/api/v1/devices/{device_id}/config"): {"set": {"health_interval_s": 5}},
    ("POST", "/api/v1/devices/{device_id}/restart"): {"reason": "matrix"},
    ("POST", "/api/v1/alerts/{alert_id}/ack"): {"comment": "seen"},
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): {"comment": "done"},
    ("POST", "/api/v1/tokens"): {"name": "matrix", "role": "operator"},
    ("POST", "/api/v1/lots/{lot}/hold"): {"reason": "matrix"},
    ("POST", "/api/v1/lots/{lot}/release"): {"reason": "matrix"},
    ("POST", "/api/v1/holds/{hold_id}/approve"): {"reason": "matrix"},
    ("POST", "/api/v1/lots"): {"lot_id": "LOT-1", "declaration_no": "D-1",
                               "commodity": "wheat", "hs_code": "100199",
                               "origin_country": "UA", "vessel": "MV M",
                               "declared_kg": 1000, "kind": "grain"},
    ("POST", "/api/v1/lots/{lot}/status"): {"status": "unloading", "reason": "matrix"},
    ("POST", "/api/v1/orders"): {"lot": "LOT-1", "plate": "AB1234", "tracker_id": "gps-1",
                                 "destination": "dest-feed-mill", "corridor": "c-feed-mill",
                                 "window_start": "2026-12-01T08:00:00Z",
                                 "window_end": 1_800_000_000_000, "expected_net_kg": 30000},
    ("POST", "/api/v1/orders/{order_id}/cancel"): {"reason": "matrix"},
    ("POST", "/api/v1/blends"): {"blend_lot": "BL-MATRIX", "inputs": [
        {"lot": "LOT-1", "kg": 1}, {"lot": "LOT-2", "kg": 1}], "reason": "matrix"},
    ("POST", "/api/v1/devices/{device_id}/calibrations"): {
        "certificate_id": "C-MATRIX", "accuracy_class": "III", "e_kg": 20,
        "issued_ms": 0, "expires_ms": 1000, "issuer": "matrix"},
    ("POST", "/api/v1/lots/{lot}/draft-survey"): {"kg": 1000, "surveyor": "matrix"},
}
PATH_VALUES["train_id"] = "T-MATRIX"
PATH_VALUES["rollout_id"] = "1"
BODIES[("POST", "/api/v1/trains")] = {"train_id": "T-MATRIX", "reader": "rail-1",
                                      "cars": [{"initial": "DLCX", "number": 1}]}
BODIES[("POST", "/api/v1/trains/{train_id}/release")] = {"reason": "matrix"}


def _app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route the app serves, nested routers flattened."""
    # FastAPI >= 0.165 keeps included routers unflattened in app.routes
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in flatten(app.routes) if flatten else app.routes:
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":  # served by the GET handler
                yield method, route.path


_APP = create_app(db_path=Path("/nonexistent/pw.db"), site=SITE)  # no I/O until a request
ROUTES = sorted(set(_app_routes(_APP)) - DEVICE_DOWNLOADS)
PROTECTED = [r for r in ROUTES if RULES.get(r) is not PUBLIC]


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"add a sample value for the path parameter in {path} to PATH_VALUES"
    return path


def _call(client: TestClient, route: tuple[str, str], headers: dict[str, str]) -> int:
    method, path = route
    body = BODIES.get(route)
    response = client.request(method, _url(path) + QUERIES.get(route, ""), headers=headers,
                              json=body)
    return response.status_code


@pytest.fixture
def client(db_path: Path, db: Store, device: dict[str, Any]) -> TestClient:
    return TestClient(create_app(db_path=db_path, site=SITE))


@pytest.fixture
def tokens(db: Store) -> dict[str, dict[str, str]]:
    return {role: {"Authorization": "Bearer " + auth.create_token(db, name=role, role=role)}
            for role in auth.ROLES}


def test_auth_matrix_covers_every_route() -> None:
    missing = [r for r in ROUTES if r not in RULES]
    assert not missing, f"routes without an auth rule in RULES: {missing}"
    stale = [r for r in RULES if r not in ROUTES]
    assert not stale, f"RULES name routes the app no longer serves: {stale}"


def test_auth_matrix_roles_are_known() -> None:
    for route, roles in RULES.items():
        assert roles is PUBLIC or roles <= set(auth.ROLES), route


def test_openapi_declares_bearer_auth_on_every_protected_operation() -> None:
    schema = _APP.openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = {(m.upper(), p): op for p, ops in schema["paths"].items()
                  for m, op in ops.items()}
    assert set(operations) <= set(ROUTES)  # the schema documents nothing the app lacks
    for route, op in operations.items():
        assert route in RULES, f"{route} has no rule in RULES"
        if RULES[route] is PUBLIC:
            assert not op.get("security"), route
        else:
            assert op.get("security") == [{"HTTPBearer": []}], route


@pytest.mark.parametrize("route", PROTECTED, ids=[" ".join(r) for r in PROTECTED])
def test_protected_route_without_token_is_401(client: TestClient,
                                              route: tuple[str, str]) -> None:
    assert _call(client, route, {}) == 401
    assert _call(client, route, {"Authorization": "Bearer pwt_not-a-token"}) == 401
    assert _call(client, route, {"Authorization": "Basic YWRtaW46YWRtaW4="}) == 401


@pytest.mark.parametrize("route", PROTECTED, ids=[" ".join(r) for r in PROTECTED])
def test_protected_route_answers_each_role_by_the_table(
        client: TestClient, tokens: dict[str, dict[str, str]], route: tuple[str, str]) -> None:
    allowed = RULES.get(route)
    assert allowed is not None, f"{route} has no rule in RULES"
    for role in auth.ROLES:
        status = _call(client, route, tokens[role])
        if role in allowed:
            assert status not in (401, 403) and status < 500, (role, status)
        else:
            assert status == 403, (role, status)


@pytest.mark.parametrize("route", [r for r in ROUTES if RULES.get(r, ()) is PUBLIC],
                         ids=lambda r: " ".join(r))
def test_public_route_answers_without_token(client: TestClient, route: tuple[str, str]) -> None:
    assert _call(client, route, {}) == 200


def test_revoked_token_is_401(client: TestClient, db: Store,
                              tokens: dict[str, dict[str, str]]) -> None:
    headers = tokens["admin"]
    assert client.get("/api/v1/devices", headers=headers).status_code == 200
    db.conn.execute("DELETE FROM api_tokens")
    assert client.get("/api/v1/devices", headers=headers).status_code == 401


def test_unauthenticated_body_is_not_validated_before_auth(client: TestClient) -> None:
    """A caller without a token learns nothing from field validation (401, not 422)."""
    posts = [r for r in PROTECTED if r[0] == "POST"]
    assert posts
    for method, path in posts:
        r = client.request(method, _url(path), json={"unexpected": [1, 2, 3]})
        assert r.status_code == 401, (path, r.text)


def test_firmware_downloads_need_their_token(client: TestClient,
                                            tokens: dict[str, dict[str, str]]) -> None:
    assert {r for r in _app_routes(_APP) if r[1].startswith("/fw/")} == DEVICE_DOWNLOADS
    for path in ("manifest.json", "manifest.sig", "files/edge/agent.mpy"):
        url = f"/fw/weighbridge/0.2.0/{path}"
        assert client.get(url, params={"t": "x" * 32}).status_code == 404
        assert client.get(url, params={"t": "x" * 32}, headers=tokens["admin"]).status_code \
            == 404
        assert client.get(url, headers=tokens["admin"]).status_code == 422
