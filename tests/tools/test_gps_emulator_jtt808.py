"""Emulated trips through the JT/T 808 path with real parts: the emulator's fixes drive
tools/jtt808_terminal.py (in this process, and as `portwatch emulate gps --jtt808`) over
real TCP to the gateway (controller/gateways), which signs positions events and publishes
them to a real Mosquitto; the test reads them with the controller's rights and checks each
HMAC. Nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
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
from tools.firmware import REPO
from tools.gps_emulator import Script, TruckPlan, Window, jtt808_fixes, paced, trajectory
from tools.jtt808_terminal import run_terminal
from tools.rig import Rig

PHONE = "13800138001"
DEVICE = "jt-" + PHONE
START = 1_796_083_200_000


@dataclass
class Site:
    rig: Rig
    keys: dict[int, bytes]
    login: tuple[str, str]
    received: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[dict[str, Any]]:
        """The terminal's evts, HMAC checked; one per seq (QoS 1 may deliver one twice, and
        the controller stores one per seq)."""
        topic = topics.topic(self.rig.site, DEVICE, "evt")
        with self.lock:
            wires = [p for t, p in self.received if t == topic]
        by_seq: dict[int, dict[str, Any]] = {}
        for w in wires:
            msg = envelope.open_message(self.keys.get, topic, w)[0]
            by_seq.setdefault(msg["seq"], msg)
        return [by_seq[k] for k in sorted(by_seq)]

    def positions(self) -> list[dict[str, Any]]:
        return [e["body"] for e in self.events() if e["kind"] == "positions"]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    rig = Rig(tmp_path / "site", tls=False)
    rig.broker.start()
    try:
        rig.provision(DEVICE, kind="gps")
        store = open_store(rig.db_path)
        login = accounts.credentials(store)
        keys = {k: v.secret for k, v in registry.secrets_by_device(store)[DEVICE].items()}
        store.close()
        rig.refresh_broker(probe=login)
        s = Site(rig, keys, login)
        observer = rig.mqtt_client("gps-emu-observer", rig.observer_account())

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with s.lock:
                s.received.append((msg.topic, bytes(msg.payload)))

        observer.on_message = on_message
        observer.connect("127.0.0.1", rig.broker.port)
        observer.subscribe(topics.uplink_filter(rig.site, "evt"), qos=1)
        observer.loop_start()
        try:
            yield s
        finally:
            observer.loop_stop()
            observer.disconnect()
    finally:
        rig.broker.stop()


async def _until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def gateway(site: Site, tmp_path: Path) -> AsyncIterator[int]:
    """The gateway in this event loop, linked to the broker; its port."""
    uplink = Uplink(store_path=site.rig.db_path, state_path=tmp_path / "gw" / "gateway.db",
                    site=site.rig.site, broker=BrokerSettings(
                        host="127.0.0.1", port=site.rig.broker.port, username=site.login[0],
                        password=site.login[1]))
    gw = Gateway(uplink, site=site.rig.site, idle_s=5.0)
    port = await gw.start("127.0.0.1", 0)
    task = asyncio.create_task(uplink.run())
    try:
        await _until(lambda: uplink.stats.connected, 10, "the gateway's broker link")
        yield port
    finally:
        await gw.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        uplink.close()


def _stored_count(site: Site) -> int:
    return sum(len(b["fixes"]) for b in site.positions())


def test_emulated_trip_over_jtt808_coverage_gap_arrives_as_blind_area_batch(
        site: Site, tmp_path: Path) -> None:
    script = Script(coverage_gaps=(Window(at_min=1.5, minutes=1),), tamper_at_min=2.0)
    fixes = trajectory(current_site(), TruckPlan("c-feed-mill", START, seed=2,
                                                 script=script))[:200]
    gap = [f for f in fixes if not f.link_up]
    assert len(gap) == 60

    async def main() -> Any:
        async with gateway(site, tmp_path) as port:
            coverage = asyncio.Event()
            stats = await run_terminal("127.0.0.1", port, PHONE,
                                       jtt808_fixes(paced(fixes, 2000), coverage),
                                       coverage=coverage)
            await _until(lambda: _stored_count(site) >= len(fixes), 20,
                         "every fix as positions")
            return stats

    stats = asyncio.run(main())
    assert stats.answered_fixes == len(fixes) and stats.unsent == 0
    assert stats.batches == 2  # 60 fixes, at most 30 to a 0x0704 batch
    positions = site.positions()
    assert len(positions) == 140 + 2  # 140 fixes one by one, 60 in two batches
    rows = sorted(r for body in positions for r in body["fixes"])
    assert [r[:5] for r in rows] == [f.row()[:5] for f in fixes]
    # the gap's fixes came together, in order, in batches after it
    blind = [r[0] for b in positions if len(b["fixes"]) > 1 for r in b["fixes"]]
    assert blind == [f.ts_ms for f in gap]
    assert all(b["src"] == "jtt808" for b in positions)
    alarms = [e["body"] for e in site.events() if e["kind"] == "alarm"]
    assert {"alarm": "case_tamper", "state": "raised"} in [
        {k: a[k] for k in ("alarm", "state")} for a in alarms]


def test_emulate_gps_jtt808_cli_drives_a_terminal_to_the_gateway(site: Site,
                                                                 tmp_path: Path) -> None:
    async def main() -> tuple[int, str]:
        async with gateway(site, tmp_path) as port:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tools.cli", "emulate", "gps", "--jtt808",
                f"127.0.0.1:{port}", "--phone", PHONE, "--speed", "1000", "--minutes", "3",
                "--start-ms", str(START), "--gap-at-min", "1.5", "--gap-min", "1",
                cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            await _until(lambda: _stored_count(site) >= 180, 20, "180 fixes as positions")
            return proc.returncode or 0, out.decode()

    code, out = asyncio.run(main())
    assert code == 0, out
    assert f"jtt808 phone {PHONE} -> 127.0.0.1:" in out and "fixes 180" in out
    assert "done: 180 fixes answered, 2 blind-area batches, 0 unsent" in out
    want = [f.row()[:5] for f in trajectory(current_site(), TruckPlan(
        "c-feed-mill", START, seed=1, script=Script(
            coverage_gaps=(Window(1.5, 1),))))[:180]]
    assert sorted(r[:5] for b in site.positions() for r in b["fixes"]) == want
