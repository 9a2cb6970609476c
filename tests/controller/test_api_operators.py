"""Operators through the API: active alerts with their age, the alert lifecycle, tokens,
decommissioning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from controller import auth, broker_auth, registry
from controller.api.app import create_app
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import Store, now_ms
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed


def _client(db_path: Path) -> TestClient:
    return TestClient(create_app(db_path=db_path, site=SITE))


def _h(db: Store, role: str, name: str | None = None) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=name or role, role=role)}


def _ingest(db: Store, *msgs: Any) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                 supervise=Runner())


def _alarm(device: dict[str, Any], seq: int, code: str, state: str, at: int) -> Any:
    return signed(device, seq=seq, kind="alarm", body={"alarm": code, "state": state},
                  ts=at - 200, received_ms=at)


def test_alerts_lists_active_ones_with_age_and_pairs_raise_and_clear(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    now = now_ms()
    _ingest(db, _alarm(device, 1, "overload", "raised", now - 90_000),
            _alarm(device, 2, "zero_drift", "raised", now - 30_000),
            _alarm(device, 3, "zero_drift", "cleared", now - 10_000))
    client, h = _client(db_path), _h(db, "operator")
    active = client.get("/api/v1/alerts", headers=h).json()
    assert [(a["code"], a["active"]) for a in active] == [("overload", True)]
    assert 89 <= active[0]["age_s"] <= 120 and active[0]["severity"] == "critical"
    every = client.get("/api/v1/alerts", params={"all": "true"}, headers=h).json()
    assert {a["code"]: a["active"] for a in every} == {"overload": True, "zero_drift": False}
    cleared = next(a for a in every if a["code"] == "zero_drift")
    assert cleared["age_s"] == 20.0 and cleared["cleared_by"] == "rule:device_alarms"
    # the raw device events stay available, one row each
    assert len(client.get("/api/v1/alarms", headers=h).json()) == 3


def test_alerts_ack_keeps_it_active_and_resolve_closes_it_once_recording_who(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    _ingest(db, _alarm(device, 1, "left_unweighed", "raised", now_ms()))
    client, h = _client(db_path), _h(db, "operator", "night-shift")
    [alert] = client.get("/api/v1/alerts", headers=h).json()
    assert (alert["code"], alert["subject"], alert["state"]) == ("left_unweighed", "seq 1",
                                                                 "open")
    url = f"/api/v1/alerts/{alert['id']}"
    assert client.post(url + "/ack", json={}, headers=h).status_code == 422  # comment needed
    assert client.post(url + "/ack", json={"comment": "   "}, headers=h).status_code == 422
    assert client.post(url + "/ack", json={"comment": "x" * 501},
                       headers=h).status_code == 422
    r = client.post(url + "/ack", json={"comment": "calling the driver"}, headers=h)
    assert r.status_code == 200, r.text
    acked = r.json()
    assert (acked["state"], acked["active"], acked["acked_by"], acked["ack_comment"]) == (
        "acknowledged", True, "token:night-shift (operator)", "calling the driver")
    again = client.post(url + "/ack", json={"comment": "me too"}, headers=h)
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
    assert [a["id"] for a in client.get("/api/v1/alerts", params={"state": "acknowledged"},
                                        headers=h).json()] == [alert["id"]]
    assert client.get("/api/v1/alerts", params={"state": "open"}, headers=h).json() == []
    r = client.post(url + "/resolve", json={"comment": "truck came back"}, headers=h)
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["state"], done["active"], done["resolved_by"], done["cleared_by"],
            done["resolve_comment"]) == ("resolved", False, "token:night-shift (operator)",
                                         "token:night-shift (operator)", "truck came back")
    assert [(t["action"], t["comment"]) for t in done["history"]] == [
        ("raise", ""), ("acknowledge", "calling the driver"), ("resolve", "truck came back")]
    assert client.get(url, headers=h).json()["history"] == done["history"]
    twice = client.post(url + "/resolve", json={"comment": "again"}, headers=h)
    assert twice.status_code == 409 and "already resolved" in twice.json()["detail"]
    late_ack = client.post(url + "/ack", json={"comment": "late"}, headers=h)
    assert late_ack.status_code == 409 and "already resolved" in late_ack.json()["detail"]
    assert client.post("/api/v1/alerts/999/ack", json={"comment": "x"},
                       headers=h).status_code == 404
    assert client.get("/api/v1/alerts/999", headers=h).status_code == 404
    assert client.get("/api/v1/alerts", headers=h).json() == []
    assert [a["state"] for a in client.get("/api/v1/alerts", params={"state": "resolved"},
                                           headers=h).json()] == ["resolved"]


def test_tokens_are_listed_by_id_and_a_revoked_one_stops_working(
        db_path: Path, db: Store) -> None:
    client, admin = _client(db_path), _h(db, "admin", "root-admin")
    made = client.post("/api/v1/tokens", json={"name": "control-room", "role": "operator"},
                       headers=admin)
    assert made.status_code == 201
    token, token_id = made.json()["token"], made.json()["token_id"]
    listed = client.get("/api/v1/tokens", headers=admin).json()
    assert {t["name"] for t in listed} == {"root-admin", "control-room"}
    assert all("token" not in t for t in listed) and token not in str(listed)
    operator = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/devices", headers=operator).status_code == 200
    assert client.get("/api/v1/tokens", headers=operator).status_code == 403
    r = client.delete(f"/api/v1/tokens/{token_id}", headers=admin)
    assert r.status_code == 200 and r.json()["revoked_by"] == "token:root-admin (admin)"
    assert client.get("/api/v1/devices", headers=operator).status_code == 401
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=admin).status_code == 404
    assert client.post("/api/v1/tokens", json={"name": "x", "role": "boss"},
                       headers=admin).status_code == 422
    assert len(client.get("/api/v1/tokens", params={"revoked": "true"},
                          headers=admin).json()) == 2


def test_decommission_keeps_history_refuses_messages_and_drops_the_broker_login(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    _ingest(db, signed(device, seq=1))
    client, admin = _client(db_path), _h(db, "admin")
    r = client.post("/api/v1/devices/wb-1/decommission", json={"reason": "gate rebuilt"},
                    headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "decommissioned"
    assert len(client.get("/api/v1/weighings", headers=admin).json()) == 1  # history kept
    assert "wb-1" not in registry.secrets_by_device(db)
    assert [a.user for a in broker_auth.accounts(db, site=SITE)] == [broker_auth.CONTROLLER_USER]
    again = client.post("/api/v1/devices/wb-1/decommission", json={"reason": "x"},
                        headers=admin)
    assert again.status_code == 409
    assert client.post("/api/v1/devices/wb-1/rotate-key", json={"grace_s": 1},
                       headers=admin).status_code == 409
    reused = client.post("/api/v1/devices", json={"device_id": "wb-1", "kind": "weighbridge"},
                         headers=admin)
    assert reused.status_code == 409  # the id stays with its history


def test_refused_notices_are_counted_once_per_span(db_path: Path, db: Store,
                                                   device: dict[str, Any]) -> None:
    body = {"count": 2, "kinds": {"weighing": 1, "alarm": 1}, "since_ts": 1764071000000,
            "until_ts": 1764071060000, "reason": "outbox_full"}
    later = {**body, "count": 1, "kinds": {"weighing": 1}, "since_ts": 1764071070000,
             "until_ts": 1764071070000}
    _ingest(db, signed(device, seq=1, kind="refused", body=body),
            signed(device, seq=2, kind="refused", body=body),  # resent after a power cut
            signed(device, seq=3, kind="refused", body=later))
    client, h = _client(db_path), _h(db, "operator")
    assert client.get("/api/v1/devices/wb-1", headers=h).json()["refused_events"] == 3
    alerts = client.get("/api/v1/alerts", headers=h).json()
    assert sorted(a["subject"] for a in alerts if a["code"] == "events_refused") == [
        "seq 1", "seq 3"]
