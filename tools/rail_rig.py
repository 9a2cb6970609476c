"""The rail reader in a HIL rig: its emulator (tools/emulators/rail_reader.py) on a
background loop and its agent (``micropython -X heapsize=96K``, driver ``rail``), for
hil_tests/test_rail_reader.py and the vessel scenario (``RailParts``: add, send_train,
passages)."""

from __future__ import annotations

import time
from typing import Any

from tools.emulators.rail_reader import RailReaderServer, TrainScript
from tools.rig import Agent, Rig
from tools.trucks_rig import TruckLoop


def add_rail_reader(rig: Rig, device_id: str, *, source: str,
                    health_interval_s: int = 2) -> Agent:
    """Provision a rail reader (kind rail_reader, driver rail) reading the AEI reader's
    lines from ``source`` (``tcp:<host>:<port>``); write its config (agent not started)."""
    cfg = rig.provision(device_id, kind="rail_reader", driver={"type": "rail",
                                                               "source": source})
    cfg["health_interval_s"] = health_interval_s
    cfg["mqtt"]["keepalive"] = 10
    agent = Agent(device_id, rig.workdir / f"{device_id}.json",
                  rig.workdir / f"{device_id}.log", None, None, cfg)
    rig.write_config(agent)
    rig.agents[device_id] = agent
    return agent


class RailParts:
    """The reader ``rail-1`` (emulated) and its agent."""

    def __init__(self, loop: TruckLoop | None = None, device_id: str = "rail-1") -> None:
        self.own_loop = loop is None
        self.loop = loop or TruckLoop()
        self.device_id = device_id
        self.server = RailReaderServer()

    def add(self, rig: Rig) -> Agent:
        """Start the emulator and provision its agent (started with the rig's agents)."""
        port = self.loop.call(self.server.start())
        return add_rail_reader(rig, self.device_id, source=f"tcp:127.0.0.1:{port}")

    def send_train(self, script: TrainScript) -> list[bytes]:
        """The train passes now: its lines to the agent."""
        return self.loop.call(self.server.send_train(script, int(time.time() * 1000)))

    def passages(self, rig: Rig) -> list[dict[str, Any]]:
        """The trains matched so far (GET /api/v1/trains, status passed)."""
        found: list[dict[str, Any]] = rig.get("/api/v1/trains", status="passed")
        return found

    def close(self) -> None:
        """Stop the emulator (and the loop, when it is this object's own)."""
        self.loop.call(self.server.close())
        if self.own_loop:
            self.loop.close()
