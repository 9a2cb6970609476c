"""The lab analyzer in a HIL rig: its emulator on a background loop and its agent
(``micropython -X heapsize=96K``), for hil_tests/test_lab_agent.py and the vessel
scenario (``LabParts``: add, report_clean, report_weed, stored)."""

from __future__ import annotations

import time
from typing import Any

from tools.emulators.lab_analyzer import LabAnalyzerServer, LabScript
from tools.rig import Agent, Rig
from tools.trucks_rig import TruckLoop

WEED = ("Ambrosia artemisiifolia", 3)


def add_lab(rig: Rig, device_id: str, *, source: str, health_interval_s: int = 2) -> Agent:
    """Provision a lab analyzer (kind lab, driver lab) reading result lines from ``source``
    (``tcp:<host>:<port>``); write its config (agent not started)."""
    cfg = rig.provision(device_id, kind="lab", driver={"type": "lab", "source": source})
    cfg["health_interval_s"] = health_interval_s
    cfg["mqtt"]["keepalive"] = 10
    agent = Agent(device_id, rig.workdir / f"{device_id}.json",
                  rig.workdir / f"{device_id}.log", None, None, cfg)
    rig.write_config(agent)
    rig.agents[device_id] = agent
    return agent


class LabParts:
    """The analyzer ``lab-1`` and its agent; samples numbered in the order sent, sampled
    at the wall clock's now (the lot unloading now is theirs)."""

    def __init__(self, loop: TruckLoop | None = None, device_id: str = "lab-1",
                 resend: int = 3) -> None:
        self.own_loop = loop is None
        self.loop = loop or TruckLoop()
        self.device_id = device_id
        self.server = LabAnalyzerServer(resend=resend)
        self.next = 1
        self.script = LabScript(prefix="LAB", interval_s=1.0)

    def add(self, rig: Rig) -> Agent:
        """Start the emulator and provision its agent (started with the rig's agents)."""
        port = self.loop.call(self.server.start())
        return add_lab(rig, self.device_id, source=f"tcp:127.0.0.1:{port}")

    def _send(self, weed: tuple[str, int] | None) -> str:
        n = self.next
        self.next += 1
        self.script = LabScript(prefix=self.script.prefix, interval_s=0.0,
                                # the next whole second: the line's time has no ms, and
                                # a sample must not seem older than the lot's unloading
                                start_ms=(int(time.time()) + 1) * 1000,
                                weed={n: weed} if weed else {})
        line = self.script.frame(n)
        self.loop.call(self.server.send(line))
        return self.script.result(n).sample_id

    def report_clean(self, rig: Rig, n: int) -> list[str]:
        """Send ``n`` clean samples; their ids."""
        return [self._send(None) for _ in range(n)]

    def report_weed(self, rig: Rig, weed: tuple[str, int] = WEED) -> str:
        """Send one sample with a quarantine weed; its id."""
        return self._send(weed)

    def stored(self, rig: Rig) -> int:
        """How many of this analyzer's samples the controller serves."""
        found: list[dict[str, Any]] = rig.get("/api/v1/samples", device_id=self.device_id,
                                              limit=10_000)
        return len(found)

    def close(self) -> None:
        """Stop the emulator (and the loop, when it is this object's own)."""
        self.loop.call(self.server.close())
        if self.own_loop:
            self.loop.close()
