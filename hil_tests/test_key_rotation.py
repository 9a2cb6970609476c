"""Rotating a running agent's key: the new key is used and acked, the old one expires.

Real parts: Mosquitto with generated logins and ACL, the emulated indicator, the
firmware under ``micropython``, the controller process (rotation through its API).
"""

from __future__ import annotations

import sqlite3

import httpx

from controller import registry
from controller.storage import now_ms
from delivery import publish
from protocols import topics
from tools.procs import wait_until
from tools.rig import Rig

FAST = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "0.8", "--leave-s", "0.3",
        "--gap-s", "0.2")
GRACE_S = 5.0


def _payload(rig: Rig, device_id: str, seq: int) -> bytes:
    with sqlite3.connect(rig.db_path) as conn:
        row = conn.execute("SELECT payload FROM messages WHERE device_id=? AND seq=?",
                           [device_id, seq]).fetchone()
    return bytes(row[0]) if row else b""


def _rejected(rig: Rig) -> dict[str, int]:
    counts: dict[str, int] = rig.get("/api/v1/ingest/stats")["rejected_by_reason"]
    return counts


def _weigh(rig: Rig, device_id: str, plate: str, seq: int) -> None:
    emulator = rig.agents[device_id].emulator
    assert emulator is not None
    emulator.client.truck(plate, 15000, 30000)
    wait_until(lambda: rig.device(device_id)["committed_seq"] == seq, 60,
               what=f"weighing {seq} committed")
    wait_until(lambda: (rig.device(device_id)["health"] or {}).get("backlog") == 0, 30,
               what="the agent's outbox empty: it accepted the ack")
    emulator.client.wait_idle(timeout=60)  # the truck has left the deck before what follows


def test_rotated_key_is_used_after_restart_and_old_key_expires(rig: Rig) -> None:
    agent = rig.add_weighbridge("wb-rot", emulator_args=FAST, stable_s=0.4, poll_ms=50)
    rig.start_agent("wb-rot")
    _weigh(rig, "wb-rot", "辽B10001", 1)
    old = _payload(rig, "wb-rot", 1)
    assert old.rsplit(b"\n", 1)[1].startswith(b"k1:")
    evt = topics.topic(rig.site, "wb-rot", "evt")
    login = rig.credentials("wb-rot")

    r = httpx.post(f"{rig.api_url}/api/v1/devices/wb-rot/rotate-key", json={"grace_s": GRACE_S},
                   headers={"Authorization": f"Bearer {rig.admin_token}"}, timeout=10)
    assert r.status_code == 200, r.text
    rotation = r.json()
    assert rotation["key_id"] == "k2"
    # within the grace the old key still verifies: the same bytes again are a duplicate
    before = _rejected(rig)
    publish(rig.broker.port, [(evt, old)], login=login, ca=rig.ca)
    wait_until(lambda: _rejected(rig).get("duplicate", 0) > before.get("duplicate", 0), 20,
               what="the replay within the grace counted as a duplicate")
    assert now_ms() < rotation["old_valid_until_ms"], "the grace was too short to test"

    boot = rig.device("wb-rot")["boot"]
    rig.kill_agent("wb-rot")
    agent.config = registry.with_key(agent.config, rotation)
    rig.write_config(agent)
    rig.start_agent("wb-rot")
    wait_until(lambda: rig.device("wb-rot")["boot"] > boot, 30, what="the agent's new birth")
    _weigh(rig, "wb-rot", "辽B10002", 2)  # stored under k2, and k2-signed acks drain it
    assert _payload(rig, "wb-rot", 2).rsplit(b"\n", 1)[1].startswith(b"k2:")
    assert rig.device("wb-rot")["key_id"] == "k2"

    wait_until(lambda: now_ms() > rotation["old_valid_until_ms"], GRACE_S + 30,
               what="the end of the grace (controller clock)")
    before = _rejected(rig)
    publish(rig.broker.port, [(evt, old)], login=login, ca=rig.ca)
    wait_until(lambda: _rejected(rig).get("expired_key", 0) > before.get("expired_key", 0), 20,
               what="the replay after the grace counted as expired_key")
    after = _rejected(rig)
    assert after.get("expired_key", 0) - before.get("expired_key", 0) == 1
    assert after.get("duplicate", 0) == before.get("duplicate", 0)
    assert [w["seq"] for w in rig.get("/api/v1/weighings", device_id="wb-rot")] == [2, 1]
    [rejection] = rig.get("/api/v1/ingest/rejections", reason="expired_key")
    assert rejection["device_id"] == "wb-rot" and "k1" in rejection["detail"]


def test_events_waiting_under_an_expired_key_are_resealed_and_delivered(rig: Rig) -> None:
    agent = rig.add_weighbridge("wb-rs", emulator_args=FAST, stable_s=0.4, poll_ms=50)
    rig.start_agent("wb-rs")
    _weigh(rig, "wb-rs", "辽B20001", 1)
    rig.broker.stop()  # two weighings wait in the outbox, sealed under k1
    emulator = agent.emulator
    assert emulator is not None
    emulator.client.truck("辽B20002", 15000, 30020)
    emulator.client.truck("辽B20003", 15000, 30040)
    wait_until(lambda: "weighing seq 3" in agent.log_text(), 60, what="seq 3 in the outbox")
    emulator.client.wait_visits(3, timeout=60)  # the truck has left: no half-seen vehicle
    r = httpx.post(f"{rig.api_url}/api/v1/devices/wb-rs/rotate-key", json={"grace_s": 0},
                   headers={"Authorization": f"Bearer {rig.admin_token}"}, timeout=10)
    assert r.status_code == 200, r.text
    rig.kill_agent("wb-rs")
    agent.config = registry.with_key(agent.config, r.json())
    rig.write_config(agent)
    rig.broker.start()
    rig.start_agent("wb-rs")
    wait_until(lambda: rig.device("wb-rs")["committed_seq"] >= 3, 60,
               what="the two old-key events committed")
    assert _payload(rig, "wb-rs", 2).rsplit(b"\n", 1)[1].startswith(b"k2:")
    assert sorted(w["net_kg"] for w in rig.get("/api/v1/weighings", device_id="wb-rs")) == [
        30000, 30020, 30040]
    # (the broker's retained birth/death under k1 is refused as expired_key: not an event)
    expired = rig.get("/api/v1/ingest/rejections", reason="expired_key")
    assert [r for r in expired if r["topic"].endswith("/evt")] == []
    wait_until(lambda: (rig.device("wb-rs")["health"] or {}).get("resealed") == 2, 30,
               what="health to count the two resealed events")
