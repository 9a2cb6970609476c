"""Lots from vessel to release, end to end: the vessel scenario.

On the demo grain port (controller/site/sites/demo-grain-port.yaml), every process real:

1. ``test_vessel_quarantine_weed_holds_the_lot_and_denies_its_truck``: a grain lot is
   declared through the API and unloads at berth-1 while the lab agent (``micropython -X
   heapsize=96K``) reports the lab emulator's samples of it; one sample finds a
   quarantine weed: within seconds the lot has an active ``quarantine`` hold, and a truck
   of that lot at the out-gate ``wb-out`` (agent under micropython, pymodbus indicator,
   ``barrier: controller``; its tracker agent stands on the deck) is denied: the
   barrier coil stays shut and ``gate_denied`` names ``lot_on_hold``.
2. ``test_vessel_train_missing_and_extra_car_both_alerted``: a train of 40 cars passes the
   rail reader agent (micropython) with one car of its manifest missing and one car not
   on it: both alerts.
3. ``test_vessel_ore_released_before_test_recall_names_its_trucks_and_cars``: an ore lot
   released before its lab test fails it: the recall list (API) names exactly the trucks
   and cars that carried it (two of its trucks and four of its cars among a truck and two
   cars of another lot). Its trucks' trackers are registered but run no agent: the
   recall does not look at positions.

The only parts emulated below a real process: the tracker's GNSS receiver UART (the GPS
emulator's NMEA over TCP), the indicator's serial line (pymodbus), and the lab analyzer's
and the AEI reader's serial ports (their emulators' TCP text lines).

Measured on this 2-core machine (load ~2): 43 s for the three; the weed's line to the
hold 0.07 s, the truck's weighing to its deny acked 0.28 s; the train's last line to its
passage matched 0.09-0.17 s; the failing result's line to ``recall_required`` 0.09-0.11 s.

Run one alone: ``pytest hil_tests/test_vessel_scenario.py -k weed``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from controller.site import current_site
from tools.demo_vessel import add_line_agent
from tools.emulators.lab_analyzer import LabAnalyzerServer, LabScript
from tools.emulators.rail_reader import Car, RailReaderServer, TrainScript, manifest_cars
from tools.procs import wait_until
from tools.rig import Rig
from tools.trucks_rig import Sent, TruckLoop, api_post, standing, start_nmea_server, stream_nmea

SPEED = 1.0  # the held truck stands on the deck: its fixes in real time
TARE, NET = 15_000, 30_000
STAY = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "6", "--leave-s", "0.3",
        "--gap-s", "0.5")
GRAIN_LOT = "LOT-V-2026-0101"
ORE_LOT = "LOT-V-2026-0102"
HOLD_WITHIN_S = 10.0  # a quarantine weed's sample to the lot's hold, wall seconds
TRAIN, TRAIN_CARS, MISSING = "T-2026-1201-07", 40, 12  # car 13 of the manifest left behind
ORE_LOT, OTHER_LOT, ORE_TRAIN = "ORE-V-0001", "ORE-V-0002", "T-2026-1201-08"
# two trucks of the ore lot and one of another; a train of 6 cars, 4 of them the ore lot's
ORE_TRUCKS = (("辽B60001", ORE_LOT), ("辽B60002", OTHER_LOT), ("辽B60003", ORE_LOT))
ORE_CARS = (ORE_LOT, ORE_LOT, OTHER_LOT, ORE_LOT, OTHER_LOT, ORE_LOT)



def _holds(rig: Rig, lot: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = rig.get("/api/v1/holds", lot=lot)
    return found


def _samples(rig: Rig, n: int) -> list[dict[str, Any]] | None:
    """lab-1's samples, oldest first, once there are ``n``."""
    found: list[dict[str, Any]] = rig.get("/api/v1/samples", device_id="lab-1")
    return list(reversed(found)) if len(found) >= n else None


def _weighing(rig: Rig, plate: str) -> dict[str, Any] | None:
    found = rig.get("/api/v1/weighings", device_id="wb-out", plate=plate)
    return dict(found[0]) if found else None


def _declare_grain_lot(rig: Rig) -> dict[str, Any]:
    lot: dict[str, Any] = api_post(rig, "/api/v1/lots", {
        "lot_id": GRAIN_LOT, "declaration_no": "DL2026-IM-778812", "commodity": "soybeans",
        "hs_code": "120190", "origin_country": "BR", "vessel": "MV Ocean Harvest",
        "declared_kg": 52_000_000, "kind": "grain"})
    return lot


@pytest.mark.timeout(180)
def test_vessel_quarantine_weed_holds_the_lot_and_denies_its_truck(rig: Rig) -> None:
    t_start = time.monotonic()
    site = current_site()
    assert site.devices["wb-out"].role == "out" and site.devices["lab-1"].zone == "berth-1"
    loop = TruckLoop()
    nmea = loop.call(start_nmea_server())
    lab = LabAnalyzerServer()
    plate, tracker = "辽B50001", "trk-v1"
    try:
        # -- the site: the out-gate, the truck's tracker, the lab analyzer and its agent
        out_gate = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
        out_gate.config["driver"]["barrier"] = "controller"
        rig.write_config(out_gate)
        rig.add_tracker(tracker, source=f"tcp:127.0.0.1:{nmea.port}")
        add_line_agent(rig, "lab-1", kind="lab", driver="lab", port=loop.call(lab.start()))
        for device_id in rig.agents:
            rig.start_agent(device_id)
        wait_until(lambda: all(rig.device(d)["status"] == "online" for d in rig.agents)
                   and lab.clients == 1, 60, what="every agent online, lab-1 on its line")

        # -- the lot: declared by the API, out of anchorage quarantine, unloading
        lot = _declare_grain_lot(rig)
        assert lot["lot_id"] == GRAIN_LOT and lot["status"] == "declared"
        for status in ("anchorage_quarantine", "unloading"):
            api_post(rig, f"/api/v1/lots/{GRAIN_LOT}/status",
                     {"status": status, "reason": "MV Ocean Harvest at berth-1"})
        assert rig.get(f"/api/v1/lots/{GRAIN_LOT}")["status"] == "unloading"
        now = int(time.time() * 1000)
        order = api_post(rig, "/api/v1/orders", {
            "lot": GRAIN_LOT, "plate": plate, "tracker_id": tracker,
            "destination": "dest-feed-mill", "corridor": "c-feed-mill",
            "window_start": now - 600_000, "window_end": now + 3_600_000,
            "expected_net_kg": NET})

        # -- the lab: three clean samples, then the weed; the lot is held within seconds
        # (sampling times: whole seconds from the next one, a minute apart on the
        # analyzer's clock, sent a second apart)
        script = LabScript(prefix="S-V", start_ms=(now // 1000 + 1) * 1000, interval_s=60.0,
                           weed={4: ("Ambrosia artemisiifolia", 3)})
        loop.call(lab.run(script, 3, speed=60.0), timeout=30)
        stored = wait_until(lambda: _samples(rig, 3), 60, what="three clean samples stored")
        assert [x["lot_id"] for x in stored] == [GRAIN_LOT] * 3
        assert all(x["findings"] == [] for x in stored)
        assert _holds(rig, GRAIN_LOT) == []  # clean samples hold nothing
        weed_wall = time.time()
        loop.call(lab.run(script, 1, first=4), timeout=30)
        [held] = wait_until(lambda: _holds(rig, GRAIN_LOT) or None, 30,
                            what=f"{GRAIN_LOT} on hold after the weed's sample")
        hold_after_s = time.time() - weed_wall
        assert held["kind"] == "quarantine" and held["active"] is True, held
        assert hold_after_s <= HOLD_WITHIN_S, hold_after_s
        assert rig.get(f"/api/v1/lots/{GRAIN_LOT}")["status"] == "held"
        [finding] = [a for a in rig.get("/api/v1/alerts", all="true", limit=100)
                     if a["code"] == "quarantine_finding"]
        assert finding["severity"] == "critical" and finding["subject"] == GRAIN_LOT
        assert finding["detail"]["species"] == ["Ambrosia artemisiifolia"]
        assert finding["detail"]["sample_id"] == "S-V-00004"

        # -- the lot's truck at the out-gate: denied, the barrier stays shut
        assert out_gate.emulator is not None
        scale = out_gate.emulator.client
        at_gate = int(time.time() * 1000)
        fixes = standing(site.zones["wb-out"], at_gate - 5_000, at_gate + 180_000, 5, seed=7,
                         ign=True)
        streaming = loop.submit(stream_nmea(nmea, fixes, SPEED, Sent()))
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
        assert all(on is False for _, on in visit["barrier_writes"])
        denied = [a for a in rig.get("/api/v1/alerts", all="true", limit=100)
                  if a["code"] == "gate_denied"]
        assert [a["detail"]["plate"] for a in denied] == [plate]
        assert "lot_on_hold" in [r["code"] for r in denied[0]["detail"]["reasons"]]
        assert rig.get(f"/api/v1/orders/{order['order_id']}")["status"] == "open"
        assert rig.get("/api/v1/trips", limit=10) == []  # nothing of the lot left
        streaming.cancel()
        print({"wall_s": round(time.monotonic() - t_start, 1),
               "weed_to_hold_s": round(hold_after_s, 2),
               "weighing_to_deny_ack_ms": cmd["acked_ms"] - int(w["device_ts"])})
    finally:
        loop.call(lab.close())
        loop.call(nmea.close())
        loop.close()


@pytest.mark.timeout(180)
def test_vessel_train_missing_and_extra_car_both_alerted(rig: Rig) -> None:
    t_start = time.monotonic()
    site = current_site()
    assert site.devices["rail-1"].zone == "rail-yard"
    loop = TruckLoop()
    reader = RailReaderServer()
    cars = manifest_cars(TRAIN_CARS)
    left_behind, extra = cars[MISSING], Car("TTGX", 555555, weight_kg=79_400)
    try:
        add_line_agent(rig, "rail-1", kind="rail_reader", driver="rail",
                       port=loop.call(reader.start()))
        rig.start_agent("rail-1")
        wait_until(lambda: rig.device("rail-1")["status"] == "online" and reader.clients == 1,
                   60, what="rail-1 online and on the reader's line")
        _declare_grain_lot(rig)
        train = api_post(rig, "/api/v1/trains", {
            "train_id": TRAIN, "reader": "rail-1", "direction": "out",
            "cars": [{"initial": c.initial, "number": c.number, "lot": GRAIN_LOT,
                      "destination": "dest-feed-mill", "declared_kg": c.weight_kg}
                     for c in cars]})
        assert train["status"] == "open" and len(train["cars"]) == TRAIN_CARS

        sent_wall = time.time()
        loop.call(reader.send_train(TrainScript(TRAIN, cars, missing=(MISSING,),
                                                extra=(extra,)), int(sent_wall * 1000)))
        shown = wait_until(lambda: (t := rig.get(f"/api/v1/trains/{TRAIN}"))["passage"]
                           and t, 60, what=f"{TRAIN}'s passage matched to its manifest")
        passage_after_s = time.time() - sent_wall
        assert shown["status"] == "passed" and shown["passage_device"] == "rail-1", shown
        assert shown["passage"]["cars"] == TRAIN_CARS  # 39 of the manifest and the extra
        assert shown["passage"]["unreadable"] == 0

        alerts = wait_until(lambda: [a for a in rig.get("/api/v1/alerts", all="true",
                                                        limit=100)
                                     if a["device_id"] == "rail-1"] or None, 30,
                            what="rail-1's alerts")
        # exactly these two: nothing about the 39 cars that match, no order or weight alert
        assert sorted((a["code"], a["subject"]) for a in alerts) == [
            ("rail_car_missing", f"{TRAIN}/{left_behind.initial}{left_behind.number}"),
            ("rail_car_unexpected", f"{TRAIN}/{extra.initial}{extra.number}")], alerts
        [missing] = [a for a in alerts if a["code"] == "rail_car_missing"]
        assert missing["detail"]["lot"] == GRAIN_LOT
        assert missing["detail"]["position"] == MISSING + 1
        # the agent's own account (its health every 5 s): one train, every tag line read
        health = wait_until(lambda: (h := rig.device("rail-1")["health"] or {})
                            .get("trains") and h, 30, what="rail-1's health after the train")
        assert (health["trains"], health["cars"], health["unreadable"]) == (1, TRAIN_CARS, 0)
        print({"wall_s": round(time.monotonic() - t_start, 1),
               "train_to_passage_s": round(passage_after_s, 2),
               "rail_health": {k: health.get(k) for k in ("aei_ok", "trains", "cars",
                                                          "unreadable", "mem_free")}})
    finally:
        loop.call(reader.close())
        loop.close()


@pytest.mark.timeout(180)
def test_vessel_ore_released_before_test_recall_names_its_trucks_and_cars(rig: Rig) -> None:
    t_start = time.monotonic()
    loop = TruckLoop()
    lab, reader = LabAnalyzerServer(), RailReaderServer()
    try:
        gate = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
        gate.config["driver"]["barrier"] = "controller"
        rig.write_config(gate)
        add_line_agent(rig, "lab-1", kind="lab", driver="lab", port=loop.call(lab.start()))
        add_line_agent(rig, "rail-1", kind="rail_reader", driver="rail",
                       port=loop.call(reader.start()))
        for plate, _ in ORE_TRUCKS:  # each truck's tracker, named on its order; no agent
            rig.provision(_tracker(plate), kind="gps", driver={})
        for device_id in rig.agents:
            rig.start_agent(device_id)
        wait_until(lambda: all(rig.device(d)["status"] == "online" for d in rig.agents)
                   and lab.clients == 1 and reader.clients == 1, 60,
                   what="wb-out, lab-1 and rail-1 online and on their lines")

        # -- the ore lot unloads (its sample is taken then), is released before its test
        sampled_ms = 0
        for lot in (ORE_LOT, OTHER_LOT):
            api_post(rig, "/api/v1/lots", {
                "lot_id": lot, "declaration_no": f"DL-{lot}", "commodity": "iron ore",
                "hs_code": "260111", "origin_country": "AU", "vessel": "MV Iron Duke",
                "declared_kg": 60_000_000, "kind": "ore"})
            api_post(rig, f"/api/v1/lots/{lot}/status",
                     {"status": "unloading", "reason": "MV Iron Duke at berth-1"})
            if lot == ORE_LOT:  # the analyzer writes whole seconds: the next is unloading
                sampled_ms = (int(time.time() * 1000) // 1000 + 1) * 1000
                wait_until(partial(_past, sampled_ms + 50), 5,
                           what="the sampling second to pass before the lot is stored")
            api_post(rig, f"/api/v1/lots/{lot}/status",
                     {"status": "stored", "reason": "in the ore yard"})
            api_post(rig, f"/api/v1/lots/{lot}/status", {
                "status": "released", "reason": "buyer's guarantee",
                "released_before_test": lot == ORE_LOT})
        assert rig.get(f"/api/v1/lots/{ORE_LOT}")["released_before_test"] in (True, 1)

        # -- it leaves: trucks through the out-gate, cars on a train past rail-1
        assert gate.emulator is not None
        scale = gate.emulator.client
        now = int(time.time() * 1000)
        for n, (plate, lot) in enumerate(ORE_TRUCKS, 1):
            api_post(rig, "/api/v1/orders", {
                "lot": lot, "plate": plate, "tracker_id": _tracker(plate),
                "destination": "dest-grain-depot", "corridor": "c-grain-depot",
                "window_start": now - 600_000, "window_end": now + 3_600_000,
                "expected_net_kg": NET + 20 * n})
            scale.truck(plate, TARE, NET + 20 * n)
            scale.wait_visits(n, timeout=60)
        wait_until(lambda: len(rig.get("/api/v1/trips")) == len(ORE_TRUCKS), 30,
                   what="every truck departed")
        trips = {x["plate"]: x for x in rig.get("/api/v1/trips")}
        cars = manifest_cars(len(ORE_CARS), initial="DLOX", first=200001)
        api_post(rig, "/api/v1/trains", {
            "train_id": ORE_TRAIN, "reader": "rail-1", "direction": "out",
            "cars": [{"initial": c.initial, "number": c.number, "lot": lot,
                      "destination": "dest-grain-depot", "declared_kg": c.weight_kg}
                     for c, lot in zip(cars, ORE_CARS, strict=True)]})
        loop.call(reader.send_train(TrainScript(ORE_TRAIN, cars), now))
        wait_until(lambda: rig.get(f"/api/v1/trains/{ORE_TRAIN}")["passage"], 60,
                   what=f"{ORE_TRAIN}'s passage")

        # -- the lab's result of the sample taken while it unloaded: too wet for ore
        fail_wall = time.time()
        loop.call(lab.run(LabScript(prefix="S-ORE", start_ms=sampled_ms, wet={1: 150}), 1))
        alert = wait_until(lambda: next((a for a in rig.get("/api/v1/alerts", limit=100)
                                         if a["code"] == "recall_required"), None), 30,
                           what="recall_required after the failing sample")
        recall_after_s = time.time() - fail_wall
        assert alert["subject"] == ORE_LOT and alert["severity"] == "critical", alert

        # -- the recall list names exactly the trucks and the cars that carried the lot
        listed = rig.get(f"/api/v1/lots/{ORE_LOT}/recall")
        assert alert["detail"]["hash"] == listed["hash"]
        assert sorted(t["trip_id"] for t in listed["trips"]) == sorted(
            trips[p]["trip_id"] for p, lot in ORE_TRUCKS if lot == ORE_LOT)
        assert sorted((c["initial"], c["number"]) for c in listed["cars"]) == sorted(
            (c.initial, c.number) for c, lot in zip(cars, ORE_CARS, strict=True)
            if lot == ORE_LOT)
        assert all(c["lot"] == ORE_LOT for c in listed["cars"])
        held = {(h["lot"], h["kind"]) for h in rig.get("/api/v1/holds", limit=100)}
        assert (ORE_LOT, "recall") in held and (OTHER_LOT, "recall") not in held
        print({"wall_s": round(time.monotonic() - t_start, 1),
               "failing_result_to_recall_s": round(recall_after_s, 2),
               "recalled": {"trips": len(listed["trips"]), "cars": len(listed["cars"])}})
    finally:
        loop.call(lab.close())
        loop.call(reader.close())
        loop.close()


def _past(ms: int) -> bool:
    return time.time() * 1000 > ms


def _tracker(plate: str) -> str:
    return f"trk-{plate[-2:]}"
