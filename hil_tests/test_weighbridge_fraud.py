"""A resistor switched into a weighbridge's load cell cable while the truck stands stable:
the real agent (micropython, 96 KiB heap) reading the emulator over Modbus sends the
weighing with its weight curve summary, and the real controller raises the critical
``weight_curve_interference`` for that truck only, not for an honest one before it.

Real parts: Mosquitto, the pymodbus indicator emulator (scenario ``resistor_step``), the
firmware under micropython, the controller process and its SQLite file.
"""

from __future__ import annotations

from typing import Any

from tools.procs import wait_until
from tools.rig import Rig

# the stable time (3 s) is long enough for the agent's stable window (1 s) to restart after
# the step (at 0.75 s) and still weigh the truck
TIMING = ("--ramp-s", "0.5", "--settle-s", "0.5", "--stable-s", "3", "--leave-s", "0.5",
          "--gap-s", "0.5")
DEVICE = "wb-fraud"


def _online(rig: Rig) -> dict[str, Any] | None:
    d = rig.device(DEVICE)
    return d if d["status"] == "online" else None


def test_weighbridge_resistor_step_while_stable_raises_weight_curve_interference(
        rig: Rig) -> None:
    agent = rig.add_weighbridge(DEVICE, emulator_args=TIMING, stable_s=1.0, poll_ms=100)
    rig.start_agent(DEVICE)
    wait_until(lambda: _online(rig), 30, what=f"{DEVICE} online")
    assert agent.emulator is not None
    emu = agent.emulator.client
    emu.truck("辽B10001", 15000, 30240)
    emu.truck("辽B10002", 15000, 30240, scenario="resistor_step")
    visits = emu.wait_visits(2, timeout=60)
    wait_until(lambda: len(rig.get("/api/v1/weighings", device_id=DEVICE)) >= 2, 30,
               what="both weighings stored")
    by_plate = {w["plate"]: w for w in rig.get("/api/v1/weighings", device_id=DEVICE)}
    honest, spliced = by_plate["辽B10001"], by_plate["辽B10002"]
    # the agent weighed what the indicator showed: 2 % (905 kg -> 900 kg) less after the step
    assert honest["gross_kg"] == 45240 and spliced["gross_kg"] == 45240 - 900
    assert [v["shown_gross_kg"] for v in visits] == [45240, 44340]
    alerts = wait_until(lambda: [a for a in rig.get("/api/v1/alerts", device_id=DEVICE)
                                 if a["code"] == "weight_curve_interference"], 30,
                        what="weight_curve_interference raised")
    [alert] = alerts
    assert (alert["severity"], alert["subject"], alert["state"]) == (
        "critical", f"seq {spliced['seq']}", "open")
    curve = alert["detail"]["curve"]
    assert curve["max_step_kg"] == 900 and curve["restarts"] == 1
    assert "a step of 900 kg (45 e)" in alert["detail"]["reasons"][0]
