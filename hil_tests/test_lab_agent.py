"""HIL: the lab analyzer's agent under ``micropython -X heapsize=96K`` reading the lab
emulator over TCP, through a real Mosquitto (TLS) to the controller.

Each result is stored once, also when the analyzer's link drops and it re-sends its last
results; a corrupt line is counted in health and nothing else is lost; a sample with a
quarantine weed puts the lot unloading at its sampling time on a ``quarantine`` hold
within seconds, and a truck of that lot at the out-gate ``wb-out`` (agent under
micropython, pymodbus indicator, ``barrier: controller``; its tracker agent stands on
the deck) is denied: the barrier coil stays shut.

Emulated below a real process: the analyzer (tools/emulators/lab_analyzer.py, its
text port), the tracker's GNSS UART (NMEA over TCP) and the indicator (pymodbus).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from controller.site import current_site
from tools.lab_rig import WEED, LabParts
from tools.procs import wait_until
from tools.rig import Rig
from tools.trucks_rig import Sent, TruckLoop, api_post, standing, start_nmea_server, stream_nmea

LOT = "LOT-LAB-2026-0001"
TARE, NET = 15_000, 30_000
STAY = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "6", "--leave-s", "0.3",
        "--gap-s", "0.5")
HOLD_WITHIN_S = 10.0


def _health(rig: Rig, device_id: str) -> dict[str, Any]:
    return rig.device(device_id)["health"] or {}


def _holds(rig: Rig) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = rig.get("/api/v1/holds", lot=LOT)
    return found


def _weighing(rig: Rig, plate: str) -> dict[str, Any] | None:
    found = rig.get("/api/v1/weighings", device_id="wb-out", plate=plate)
    return dict(found[0]) if found else None


@pytest.mark.timeout(180)
def test_lab_agent_samples_stored_once_weed_holds_the_lot_and_its_truck_is_denied(
        rig: Rig) -> None:
    site = current_site()
    loop = TruckLoop()
    nmea = loop.call(start_nmea_server())
    lab = LabParts(loop)
    plate, tracker = "辽B60001", "trk-lab"
    try:
        out_gate = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
        out_gate.config["driver"]["barrier"] = "controller"
        rig.write_config(out_gate)
        rig.add_tracker(tracker, source=f"tcp:127.0.0.1:{nmea.port}")
        lab.add(rig)
        for device_id in rig.agents:
            rig.start_agent(device_id)
        wait_until(lambda: all(rig.device(d)["status"] == "online" for d in rig.agents), 60,
                   what="every agent online")
        wait_until(lambda: lab.server.clients == 1, 30, what="the lab agent on the analyzer")

        api_post(rig, "/api/v1/lots", {
            "lot_id": LOT, "declaration_no": "DL2026-IM-1", "commodity": "soybeans",
            "hs_code": "120190", "origin_country": "BR", "vessel": "MV Lab Test",
            "declared_kg": 50_000_000, "kind": "grain"})
        api_post(rig, f"/api/v1/lots/{LOT}/status",
                 {"status": "unloading", "reason": "berth-1 discharge started"})
        now = int(time.time() * 1000)
        order = api_post(rig, "/api/v1/orders", {
            "lot": LOT, "plate": plate, "tracker_id": tracker,
            "destination": "dest-feed-mill", "corridor": "c-feed-mill",
            "window_start": now - 600_000, "window_end": now + 3_600_000,
            "expected_net_kg": NET})

        # -- clean samples, a corrupt line, then the link drops: the analyzer re-sends
        clean = lab.report_clean(rig, 3)
        loop.call(lab.server.send(b"RES,broken*00\r\n"))
        wait_until(lambda: lab.stored(rig) >= 3, 60, what="three clean samples stored")
        loop.call(lab.server.drop_clients())
        wait_until(lambda: lab.server.connections >= 2 and lab.server.clients == 1, 30,
                   what="the lab agent back on the analyzer")
        h = wait_until(lambda: (lambda x: x if x.get("duplicates", 0) >= 2 else None)(
            _health(rig, "lab-1")), 30, what="the re-sent results counted as duplicates")
        assert h["lab_bad_checksum"] >= 1 and h["samples"] == 3, h
        stored = rig.get("/api/v1/samples", device_id="lab-1")
        assert sorted(s["sample_id"] for s in stored) == sorted(clean)
        assert {s["lot_id"] for s in stored} == {LOT}
        assert _holds(rig) == []  # clean samples hold nothing

        # -- the weed: the lot on a quarantine hold within seconds
        weed_wall = time.time()
        weed_id = lab.report_weed(rig)
        [held] = wait_until(lambda: _holds(rig) or None, 30, what=f"{LOT} on hold")
        hold_after_s = held["held_ms"] / 1000 - weed_wall
        assert held["kind"] == "quarantine" and held["active"] is True, held
        assert WEED[0] in held["reason"] and hold_after_s <= HOLD_WITHIN_S, held
        alerts = [a for a in rig.get("/api/v1/alerts") if a["code"] == "quarantine_finding"]
        assert [(a["subject"], a["severity"]) for a in alerts] == [(LOT, "critical")]
        lot_samples = rig.get(f"/api/v1/lots/{LOT}/samples")
        assert lot_samples[0]["sample_id"] == weed_id  # the newest
        assert lot_samples[0]["findings"][0]["species"] == WEED[0]

        # -- the lot's truck at the out-gate: denied, the barrier stays shut
        assert out_gate.emulator is not None
        scale = out_gate.emulator.client
        t0 = now - 60_000
        fixes = standing(site.zones["wb-out"], t0, t0 + 240_000, 5, seed=7, ign=True)
        streaming = loop.submit(stream_nmea(nmea, [f for f in fixes if f.ts_ms >= now - 5_000],
                                            1.0, Sent()))
        scale.truck(plate, TARE, NET)
        w: dict[str, Any] = wait_until(partial(_weighing, rig, plate), 60,
                                       what=f"{plate} weighed at wb-out")
        cmd = wait_until(lambda: next((c for c in rig.get("/api/v1/commands",
                                                          device_id="wb-out")
                                       if c["body"]["weighing_seq"] == w["seq"]
                                       and c["state"] == "acked"), None), 30,
                         what="the out-gate's command acked")
        assert (cmd["body"]["action"], cmd["ack"]["result"]) == ("deny", "done"), cmd
        [visit] = scale.wait_visits(1, timeout=30)
        assert visit["barrier_opened_ts"] is None
        assert rig.get(f"/api/v1/orders/{order['order_id']}")["status"] == "open"
        streaming.cancel()

        # -- the agent stayed inside its 96 KiB heap; each result stored once
        h = _health(rig, "lab-1")
        assert h["mem_errors"] == 0 and h["mem_free"] > 0, h
        assert lab.stored(rig) == 4
        print({"weed_to_hold_s": round(hold_after_s, 2), "lab_mem_free": h["mem_free"],
               "lab_health": {k: h[k] for k in ("lab_ok", "samples", "duplicates",
                                                "lab_bad_checksum", "io_errors")}})
    finally:
        lab.close()
        loop.call(nmea.close())
        loop.close()
