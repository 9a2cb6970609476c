"""An emulated trip through the JT/T 808 path with real parts: the emulator's fixes drive
tools/jtt808_terminal.py over real TCP to the gateway (controller/gateways), which signs
positions events and publishes them to a real Mosquitto; the test reads them with the
controller's rights and checks each HMAC. Nothing is mocked."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import registry
from controller.gateways import accounts
from controller.gateways.jtt808 import Gateway
from controller.gateways.jtt808_uplink import Uplink
from controller.ingest.service import BrokerSettings
from controller.site import current_site
from controller.storage import open_store
from protocols import envelope, topics
from tools.gps_emulator import Script, TruckPlan, Window, jtt808_fixes, paced, trajectory
from tools.jtt808_terminal import run_terminal
from tools.rig import Rig

PHONE = "13800138001"
DEVICE = "jt-" + PHONE
START = 1_796_083_200_000


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    rig = Rig(tmp_path / "site", tls=False)
    rig.broker.start()
    try:
        rig.provision(DEVICE, kind="gps")
        store = open_store(rig.db_path)
        login = accounts.credentials(store)
        store.close()
        rig.refresh_broker(probe=login)
        yield rig
    finally:
        rig.broker.stop()


async def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_emulated_trip_over_jtt808_coverage_gap_arrives_as_blind_area_batch(
        rig: Rig, tmp_path: Path) -> None:
    script = Script(coverage_gaps=(Window(at_min=1.5, minutes=1),), tamper_at_min=2.0)
    fixes = trajectory(current_site(), TruckPlan("c-feed-mill", START, seed=2,
                                                 script=script))[:200]
    gap = [f for f in fixes if not f.link_up]
    assert len(gap) == 60
    received: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    observer = rig.mqtt_client("gps-emu-observer", rig.observer_account())

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        with lock:
            received.append((msg.topic, bytes(msg.payload)))

    observer.on_message = on_message
    observer.connect("127.0.0.1", rig.broker.port)
    observer.subscribe(topics.uplink_filter(rig.site, "evt"), qos=1)
    observer.loop_start()
    store = open_store(rig.db_path)
    user, password = accounts.credentials(store)
    keys = {k: v.secret for k, v in registry.secrets_by_device(store)[DEVICE].items()}
    store.close()

    def events() -> list[dict[str, Any]]:
        topic = topics.topic(rig.site, DEVICE, "evt")
        with lock:
            wires = [p for t, p in received if t == topic]
        # QoS 1 may deliver a message twice (and a resend is the same seq): one per seq,
        # as the controller stores them
        by_seq: dict[int, dict[str, Any]] = {}
        for w in wires:
            msg = envelope.open_message(keys.get, topic, w)[0]
            by_seq.setdefault(msg["seq"], msg)
        return [by_seq[k] for k in sorted(by_seq)]

    async def main() -> Any:
        uplink = Uplink(store_path=rig.db_path, state_path=tmp_path / "gw" / "gateway.db",
                        site=rig.site, broker=BrokerSettings(
                            host="127.0.0.1", port=rig.broker.port, username=user,
                            password=password))
        gateway = Gateway(uplink, site=rig.site, idle_s=5.0)
        port = await gateway.start("127.0.0.1", 0)
        task = asyncio.create_task(uplink.run())
        try:
            await _until(lambda: uplink.stats.connected, 10, "the gateway's broker link")
            coverage = asyncio.Event()
            stats = await run_terminal("127.0.0.1", port, PHONE,
                                       jtt808_fixes(paced(fixes, 2000), coverage),
                                       coverage=coverage)
            await _until(lambda: sum(len(e["body"]["fixes"]) for e in events()
                                     if e["kind"] == "positions") >= len(fixes), 20,
                         "every fix as positions")
            return stats
        finally:
            await gateway.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            uplink.close()

    try:
        stats = asyncio.run(main())
    finally:
        observer.loop_stop()
        observer.disconnect()
    assert stats.answered_fixes == len(fixes) and stats.unsent == 0
    assert stats.batches == 2  # 60 fixes, at most 30 to a 0x0704 batch
    positions = [e["body"] for e in events() if e["kind"] == "positions"]
    assert len(positions) == 140 + 2  # 140 fixes one by one, 60 in two batches
    rows = sorted(r for body in positions for r in body["fixes"])
    assert [r[:5] for r in rows] == [f.row()[:5] for f in fixes]
    # the gap's fixes came together, in order, in batches after it
    blind = [r[0] for b in positions if len(b["fixes"]) > 1 for r in b["fixes"]]
    assert blind == [f.ts_ms for f in gap]
    assert all(b["src"] == "jtt808" for b in positions)
    alarms = [e["body"] for e in events() if e["kind"] == "alarm"]
    assert {"alarm": "case_tamper", "state": "raised"} in [
        {k: a[k] for k in ("alarm", "state")} for a in alarms]
