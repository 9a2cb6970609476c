"""Release before test, end to end: an ore lot released before its lab result, its trucks
leave through the out-gate, then the lab's result fails it and the controller recalls it.

Every process real: Mosquitto over TLS, the controller on its SQLite store, the out-gate
weighbridge agent ``wb-out`` (``micropython``, ``barrier: controller``) with the pymodbus
indicator emulator, the lab analyzer agent ``lab-1`` (``micropython``, driver ``lab``)
reading the lab analyzer emulator's result lines over TCP. Lots (their release before
test too), orders and the blend are made through the API. Nothing is mocked below a
process but the indicator's serial line (pymodbus), the analyzer's serial port and the
rail reader's (their TCP text ports).

Two trucks of the ore lot and one of a blend containing it (75 %) leave; a truck of an
unrelated lot leaves too. A train leaves past the rail reader agent ``rail-1``
(``micropython``, the AEI reader emulator's lines over TCP, its manifest made through the
API) with two cars of the lot, one of the blend and one of the other lot. The lab's one
sample of the lot, taken while it unloaded, is too wet for iron ore (150 per mille, limit
90): ``recall_required`` (critical) is raised, the lot and the blend get ``recall``
holds, and the recall list (GET /api/v1/lots/{lot}/recall) names exactly the three trucks
and the three cars, with the weights the reader measured. Then a fifth truck of the lot
is denied at the out-gate.

Run: ``pytest hil_tests/test_release_before_test.py``.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import pytest

from controller.site import current_site
from tools.emulators.lab_analyzer import LabAnalyzerServer, LabScript
from tools.emulators.rail_reader import Car, TrainScript
from tools.procs import wait_until
from tools.rail_rig import RailParts
from tools.rig import Agent, Rig
from tools.trucks_rig import TruckLoop, api_post

STAY = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "6", "--leave-s", "0.3",
        "--gap-s", "0.6")
TARE, NET = 15_000, 30_000
ORE, OTHER, BLEND = "ORE-R-0001", "ORE-R-0002", "BL-R-0001"


def _declare(rig: Rig, lot: str, country: str) -> None:
    api_post(rig, "/api/v1/lots", {
        "lot_id": lot, "declaration_no": f"DL-{lot}", "commodity": "iron ore",
        "hs_code": "260111", "origin_country": country, "vessel": "MV Iron Duke",
        "declared_kg": 60_000_000, "kind": "ore"})


def _status(rig: Rig, lot: str, *statuses: str) -> None:
    for s in statuses:
        api_post(rig, f"/api/v1/lots/{lot}/status", {"status": s, "reason": f"to {s}"})


def _order(rig: Rig, lot: str, plate: str, net: int = NET) -> dict[str, Any]:
    now = int(time.time() * 1000)
    found: dict[str, Any] = api_post(rig, "/api/v1/orders", {
        "lot": lot, "plate": plate, "tracker_id": f"trk-{plate[-2:]}",
        "destination": "dest-feed-mill",
        "corridor": "c-feed-mill", "window_start": now - 600_000,
        "window_end": now + 3_600_000, "expected_net_kg": net})
    return found


def _command(rig: Rig, plate: str) -> dict[str, Any] | None:
    found = rig.get("/api/v1/weighings", device_id="wb-out", plate=plate)
    if not found:
        return None
    seq = found[0]["seq"]
    return next((dict(c) for c in rig.get("/api/v1/commands", device_id="wb-out")
                 if c["body"]["weighing_seq"] == seq and c["state"] == "acked"), None)


def _add_lab(rig: Rig, port: int) -> Agent:
    cfg = rig.provision("lab-1", kind="lab",
                        driver={"type": "lab", "source": f"tcp:127.0.0.1:{port}"})
    cfg["health_interval_s"] = 2
    cfg["mqtt"]["keepalive"] = 10
    agent = Agent("lab-1", rig.workdir / "lab-1.json", rig.workdir / "lab-1.log", None, None,
                  cfg)
    rig.write_config(agent)
    rig.agents["lab-1"] = agent
    return agent


@pytest.mark.timeout(240)
def test_release_before_test_failing_sample_recalls_exactly_the_trucks_that_left(
        rig: Rig) -> None:
    t_start = time.monotonic()
    assert current_site().devices["wb-out"].role == "out"
    loop = TruckLoop()
    analyzer = LabAnalyzerServer()
    port = loop.call(analyzer.start())
    rail = RailParts(loop)
    try:
        gate = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
        gate.config["driver"]["barrier"] = "controller"
        rig.write_config(gate)
        _add_lab(rig, port)
        rail.add(rig)
        for n in range(1, 6):  # each truck's tracker, on its order; no tracker agent here
            rig.provision(f"trk-{n:02d}", kind="gps", driver={})
        for device_id in rig.agents:
            rig.start_agent(device_id)
        wait_until(lambda: all(rig.device(d)["status"] == "online" for d in rig.agents), 60,
                   what="wb-out, lab-1 and rail-1 online")
        wait_until(lambda: analyzer.clients >= 1, 30, what="lab-1 connected to the analyzer")
        wait_until(lambda: rail.server.clients >= 1, 30, what="rail-1 connected to the reader")

        # -- the lots: ORE unloads (sampled now), is released before its test, blended
        _declare(rig, ORE, "AU")
        _declare(rig, OTHER, "BR")
        _status(rig, ORE, "unloading")
        # the analyzer writes whole seconds: the next one is inside the unloading
        sampled_ms = (int(time.time() * 1000) // 1000 + 1) * 1000
        wait_until(lambda: time.time() * 1000 > sampled_ms + 50, 5,
                   what="the sampling second to pass before the lot is stored")
        _status(rig, ORE, "stored")
        r = api_post(rig, f"/api/v1/lots/{ORE}/status", {
            "status": "released", "reason": "buyer's guarantee", "released_before_test": True})
        assert r["status"] == "released" and r["released_before_test"] is True, r
        _status(rig, OTHER, "unloading", "stored", "released")
        blend = api_post(rig, "/api/v1/blends", {
            "blend_lot": BLEND, "reason": "grade 62",
            "inputs": [{"lot": ORE, "kg": 30_000_000}, {"lot": OTHER, "kg": 10_000_000}]})
        assert [i["fraction"] for i in blend["inputs"]] == [0.75, 0.25]

        # -- trucks leave: two of ORE, one of the blend, one of OTHER (not recalled)
        assert gate.emulator is not None
        scale = gate.emulator.client
        left = [(ORE, "辽B70001"), (ORE, "辽B70002"), (BLEND, "辽B70003"),
                (OTHER, "辽B70004")]
        for n, (lot, plate) in enumerate(left, 1):
            _order(rig, lot, plate, NET + 20 * n)  # each truck's own net, e = 20 kg
            scale.truck(plate, TARE, NET + 20 * n)
            cmd = wait_until(partial(_command, rig, plate), 60, what=f"{plate}'s command")
            assert cmd["body"]["action"] == "open", cmd
            scale.wait_visits(n, timeout=30)
        trips = {t["plate"]: t for t in rig.get("/api/v1/trips")}
        assert set(trips) == {p for _, p in left}

        # -- a train leaves past rail-1: two cars of ORE, one of the blend, one of OTHER
        on_train = [(Car("DLCX", 200001, weight_kg=80_400), ORE),
                    (Car("DLCX", 200002, weight_kg=79_600), ORE),
                    (Car("DLCX", 200003, weight_kg=81_000), BLEND),
                    (Car("DLCX", 200004, weight_kg=80_000), OTHER)]
        api_post(rig, "/api/v1/trains", {
            "train_id": "T-R-1", "reader": "rail-1", "direction": "out",
            "cars": [{"initial": c.initial, "number": c.number, "lot": lot,
                      "destination": "dest-feed-mill", "declared_kg": 80_000}
                     for c, lot in on_train]})
        rail.send_train(TrainScript("R1", tuple(c for c, _ in on_train)))
        wait_until(lambda: rail.passages(rig) or None, 60, what="the train's passage matched")
        released = api_post(rig, "/api/v1/trains/T-R-1/release", {"reason": "dispatched"})
        assert released["status"] == "released", released

        # -- the lab's result of ORE's sample: too wet for iron ore
        fail_wall = time.time()
        script = LabScript(prefix="S-ORE", start_ms=sampled_ms, wet={1: 150})
        loop.call(analyzer.run(script, 1))

        def recall_alert() -> dict[str, Any] | None:
            alerts = rig.get("/api/v1/alerts", limit=100)
            found = next((a for a in alerts if a["code"] == "recall_required"), None)
            if found is None:
                print("alerts:", [(a["code"], a["subject"]) for a in alerts])
            return found

        alert = wait_until(recall_alert, 30, what="recall_required after the failing sample: "
                           "alerts seen are printed above")
        recall_after_s = alert["raised_ms"] / 1000 - fail_wall
        assert alert["severity"] == "critical" and alert["subject"] == ORE, alert
        assert "moisture_pm 150 above 90" in alert["detail"]["reasons"], alert
        listed = rig.get(f"/api/v1/lots/{ORE}/recall")
        assert alert["detail"]["hash"] == listed["hash"]
        assert sorted((t["plate"], t["via"], t["fraction"]) for t in listed["trips"]) == [
            ("辽B70001", ORE, 1.0), ("辽B70002", ORE, 1.0), ("辽B70003", BLEND, 0.75)]
        assert {t["trip_id"] for t in listed["trips"]} == {
            trips[p]["trip_id"] for p in ("辽B70001", "辽B70002", "辽B70003")}
        for t in listed["trips"]:
            assert t["net_kg"] == trips[t["plate"]]["net_kg"] and t["departed_ms"] > 0
        assert [(c["train"], c["number"], c["via"], c["fraction"], c["weight_kg"],
                 c["weighed"]) for c in listed["cars"]] == [
            ("T-R-1", 200001, ORE, 1.0, 80_400, True), ("T-R-1", 200002, ORE, 1.0, 79_600, True),
            ("T-R-1", 200003, BLEND, 0.75, 81_000, True)]
        assert alert["detail"]["cars"] == 3 and alert["detail"]["trips"] == 3
        held = {(h["lot"], h["kind"]) for h in rig.get("/api/v1/holds", limit=100)}
        assert {(ORE, "recall"), (BLEND, "recall")} <= held
        assert (OTHER, "recall") not in held

        # -- a truck of the recalled lot is now denied at the out-gate
        _order(rig, ORE, "辽B70005")
        scale.truck("辽B70005", TARE, NET)
        cmd = wait_until(partial(_command, rig, "辽B70005"), 60, what="the 5th truck's command")
        assert cmd["body"]["action"] == "deny", cmd
        print({"wall_s": round(time.monotonic() - t_start, 1),
               "failing_result_to_recall_s": round(recall_after_s, 2),
               "trips_recalled": len(listed["trips"]), "cars_recalled": len(listed["cars"])})
    finally:
        loop.call(analyzer.close())
        rail.close()
        loop.close()
