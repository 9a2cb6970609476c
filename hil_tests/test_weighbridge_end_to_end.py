"""A weighbridge agent under MicroPython reports weighings through Mosquitto to the controller.

Real parts: Mosquitto, the pymodbus indicator emulator, the firmware under
``micropython -X heapsize=96K``, the controller process, its SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from delivery import publish
from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

FAST = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "0.8", "--leave-s", "0.3",
        "--gap-s", "0.2")


def _online(rig: Rig, device_id: str) -> dict[str, Any] | None:
    d = rig.device(device_id)
    return d if d["status"] == "online" else None


def _trucks(n: int) -> list[tuple[str, int, int]]:
    return [(f"辽B{10000 + i}", 14000 + 20 * i, 30000 + 40 * i) for i in range(n)]


def test_twenty_trucks_give_exactly_twenty_weighings_with_exact_weights(rig: Rig) -> None:
    agent = rig.add_weighbridge("wb-gate1", emulator_args=FAST, stable_s=0.4, poll_ms=50)
    rig.start_agent("wb-gate1")
    wait_until(lambda: _online(rig, "wb-gate1"), 30, what="wb-gate1 online")
    assert agent.emulator is not None
    emu = agent.emulator.client
    for plate, tare, net in _trucks(20):
        emu.truck(plate, tare, net)
    visits = emu.wait_visits(20, timeout=120)
    wait_until(lambda: len(rig.get("/api/v1/weighings", limit=100)) >= 20, 30,
               what="20 weighings in the controller")
    stored = rig.get("/api/v1/weighings", limit=100)
    assert len(stored) == 20
    got = sorted((w["plate"], w["gross_kg"], w["tare_kg"], w["net_kg"]) for w in stored)
    want = sorted((v["plate"], v["gross_kg"], v["tare_kg"], v["net_kg"]) for v in visits)
    assert got == want
    assert sorted(w["seq"] for w in stored) == list(range(1, 21))
    # the outbox empties: every event acknowledged after the durable commit
    wait_until(lambda: rig.device("wb-gate1")["committed_seq"] == 20, 10, what="committed 20")
    wait_until(lambda: (rig.device("wb-gate1")["health"] or {}).get("backlog") == 0, 15,
               what="agent backlog 0 in health")
    dev = rig.device("wb-gate1")
    assert dev["fw_version"] and dev["health"]["mem_free"] > 0
    assert dev["health"]["mem_errors"] == 0  # it ran inside the 96 KiB heap throughout
    assert rig.get("/api/v1/alarms") == []


def _snapshot(rig: Rig) -> list[tuple[Any, ...]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT * FROM messages ORDER BY device_id, seq").fetchall()
        rows += conn.execute("SELECT * FROM weighings ORDER BY device_id, seq").fetchall()
    return rows


def test_bad_signature_replay_malformed_and_unknown_device_are_rejected(rig: Rig) -> None:
    agent = rig.add_weighbridge("wb-gate1", emulator_args=FAST, stable_s=0.4, poll_ms=50)
    rig.start_agent("wb-gate1")
    assert agent.emulator is not None
    agent.emulator.client.truck("辽B55555", 15000, 31000)
    wait_until(lambda: rig.get("/api/v1/weighings"), 60, what="one weighing")
    before = _snapshot(rig)
    with sqlite3.connect(rig.db_path) as conn:
        stored_topic, stored_payload = conn.execute(
            "SELECT topic, payload FROM messages WHERE seq = 1").fetchone()
    secret = bytes.fromhex(agent.config["secret_hex"])
    evt = topics.topic(rig.site, "wb-gate1", "evt")
    forged = dict(json.loads(stored_payload.split(b"\n")[0]), seq=99)
    forged["body"] = dict(forged["body"], net_kg=1)
    cases = {
        "bad_signature": (evt, envelope.seal(b"\x00" * 32, "k1", evt, forged)),
        "duplicate": (stored_topic, stored_payload),  # a replay of the exact bytes
        "no_signature": (evt, b"\xff\xfe not even text"),
        "bad_json": (evt, envelope.seal(secret, "k1", evt, {"v": 1}).replace(b'{"v": 1}',
                                                                            b"{nope")),
        "unknown_device": (topics.topic(rig.site, "ghost", "evt"), stored_payload),
    }
    # bad_json needs a valid signature over the garbage: seal the garbage bytes directly
    garbage = b"{nope"
    cases["bad_json"] = (evt, garbage + b"\nk1:" + envelope.signature(secret, evt,
                                                                      garbage).encode())
    baseline = rig.get("/api/v1/ingest/stats")["rejected_by_reason"]
    for topic, payload in cases.values():
        publish(rig.broker.port, [(topic, payload)], login=rig.test_account(), ca=rig.ca)

    def counted() -> dict[str, int] | None:
        now = rig.get("/api/v1/ingest/stats")["rejected_by_reason"]
        delta = {r: now.get(r, 0) - baseline.get(r, 0) for r in cases}
        return delta if all(v >= 1 for v in delta.values()) else None

    delta = wait_until(counted, 20, what="every bad message counted")
    assert delta == dict.fromkeys(cases, 1)
    assert _snapshot(rig) == before
    reasons = {r["reason"] for r in rig.get("/api/v1/ingest/rejections")}
    assert set(cases) <= reasons
    assert rig.device("wb-gate1")["status"] == "online"  # the agent and controller carry on
