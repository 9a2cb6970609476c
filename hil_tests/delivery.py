"""Shared steps of the delivery fault tests: drive trucks, then compare message by message."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tools.broker import paho_client
from tools.procs import wait_until
from tools.rig import Agent, Rig

FAST = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "0.8", "--leave-s", "0.3",
        "--gap-s", "0.2")


def publish(port: int, messages: list[tuple[str, bytes]], *,
            login: tuple[str, str] | None = None, client_id: str = "hil-publisher",
            timeout: float = 10, ca: Path | None = None) -> None:
    """Publish (topic, payload) pairs at QoS 1 from a fresh paho client as ``login`` (over
    TLS pinned to ``ca`` if given), each acknowledged by the broker (PUBACK) before the next."""
    c = paho_client(client_id, ca=ca, login=login)
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for topic, payload in messages:
            c.publish(topic, payload, qos=1).wait_for_publish(timeout)
    finally:
        c.loop_stop()
        c.disconnect()


def start_weighbridge(rig: Rig, device_id: str = "wb-1", **kw: Any) -> Agent:
    """Provision, start and wait for one weighbridge agent to come online."""
    agent = rig.add_weighbridge(device_id, emulator_args=FAST, stable_s=0.4, poll_ms=50, **kw)
    rig.start_agent(device_id)
    wait_until(lambda: rig.device(device_id)["status"] == "online", 30,
               what=f"{device_id} online")
    return agent


def send_trucks(agent: Agent, first: int, count: int) -> None:
    assert agent.emulator is not None
    for i in range(first, first + count):
        agent.emulator.client.truck(f"辽B{20000 + i}", 14000 + 20 * i, 30000 + 40 * i)


def stored_rows(rig: Rig, device_id: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(rig.db_path) as conn:
        return conn.execute("SELECT seq, kind FROM messages WHERE device_id=? ORDER BY seq",
                            (device_id,)).fetchall()


def weighings(rig: Rig, device_id: str) -> list[tuple[str, int, int, int]]:
    with sqlite3.connect(rig.db_path) as conn:
        return sorted(conn.execute(
            "SELECT plate, gross_kg, tare_kg, net_kg FROM weighings WHERE device_id=?",
            (device_id,)).fetchall())


def wait_weighings(rig: Rig, device_id: str, count: int, timeout: float = 90) -> None:
    wait_until(lambda: len(weighings(rig, device_id)) >= count, timeout,
               what=f"{count} weighings stored for {device_id}")


def assert_exactly_once(rig: Rig, agent: Agent, trucks: int) -> None:
    """Every truck the emulator weighed is stored once, with its exact weights; the seqs the
    agent assigned are 1..N with no gap and no duplicate, and all are acknowledged."""
    assert agent.emulator is not None
    visits = agent.emulator.client.wait_visits(trucks, timeout=120)
    assert len(visits) == trucks
    wait_weighings(rig, agent.device_id, trucks)
    want = sorted((v["plate"], v["gross_kg"], v["tare_kg"], v["net_kg"]) for v in visits)
    assert weighings(rig, agent.device_id) == want
    rows = stored_rows(rig, agent.device_id)
    seqs = [seq for seq, _ in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in stored seqs"
    wait_until(lambda: rig.device(agent.device_id)["committed_seq"] == len(seqs), 30,
               what="the watermark to cover every stored event")
    assert rig.device(agent.device_id)["missing"] == []


def assert_store_audits_clean(rig: Rig) -> None:
    """Every served row is what the ledger's entries make (`portwatch ledger audit`'s code):
    an honest run, whatever faults it went through, never reads as tampered; and the running
    controller raised no store_tampered alert."""
    from controller import audit
    from controller.storage import read_snapshot

    with read_snapshot(rig.db_path) as conn:
        report = audit.audit_store(conn)
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.entries == messages and report.unchecked_flags == 0
    assert not [a for a in rig.get("/api/v1/alerts", all="true")
                if a["code"] == "store_tampered"]


def assert_ledger_verifies(rig: Rig, tmp: Any) -> None:
    """The ledger holds one entry per stored message and rejection (and the decisions),
    and an exported bundle verifies offline from the first entry to the last."""
    from controller.ledger import bundle
    from controller.storage import ledger_log as ledger_store

    with sqlite3.connect(rig.db_path) as conn:
        messages = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        in_ledger = conn.execute("SELECT count(*) FROM ledger_entries WHERE "
                                 "kind='device_message' AND subkind='evt'").fetchone()[0]
        size = ledger_store.size(conn)
    assert in_ledger == messages, "every stored custody event is in the ledger, once"
    assert size > messages + devices  # plus health, state, rejections and provisioning
    import httpx

    r = httpx.post(rig.api_url + "/api/v1/ledger/checkpoints", timeout=10,
                   headers={"Authorization": f"Bearer {rig.admin_token}"})
    assert r.status_code == 201, r.text
    signed_size = r.json()["size"]
    assert signed_size >= size  # health keeps arriving: the log only grows
    out = Path(tmp) / "bundle.json"
    bundle.export(rig.db_path, out)
    report = bundle.verify(out)
    assert report.ok, report.first
    assert report.entries >= signed_size
