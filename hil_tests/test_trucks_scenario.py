"""Trucks under dynamic supervision, end to end: the issue's acceptance scenario.

Twelve trucks leave the demo grain port (controller/site/sites/demo-grain-port.yaml)
through its out-gate weighbridge ``wb-out``:

- ten on trips: eight with portwatch tracker agents (``micropython -X heapsize=96K``,
  NMEA over TCP from the GPS emulator, MQTT over TLS to the real Mosquitto) and two with
  JT/T 808 terminals (tools/jtt808_terminal.py) through the gateway process. Eight trips
  are clean (seven agents' and one terminal's), one agent's truck detours, and the other
  terminal's truck detours while out of coverage for 10 minutes (device time): its fixes
  of the gap land later as blind-area batches. One clean truck's agent loses its broker
  link for 10 minutes of device time as well (tools/netem.py LinkProxy cuts it): its
  outbox delivers the batches afterwards, nothing lost and no alert;
- a truck whose lot is on hold (POSTed before it comes): denied at the gate;
- a truck weighed under another truck's plate while that plate's tracker (a JT/T 808
  terminal) stands at the feed mill 25 km away: the cross-sensor check raises
  ``tracker_not_at_weighbridge``.

The held and swapped trucks are additional to the ten; their trackers are two more JT/T
808 terminals (so four terminals in all; the issue's "two trackers speak JT/T 808" are
the two on trips). Each truck has a transfer order made through the API; the out-gate
agent (micropython, pymodbus indicator emulator, ``barrier: controller``) weighs each in
turn and the controller opens or keeps shut its barrier coil. Once a truck is weighed its
tracker's stream starts: on the deck a minute before the weighing and half a minute
after, then the corridor, released 60 x faster than real time (fix time is device time;
the rules run on it). The only part emulated below a real process is each tracker's
GNSS receiver UART (an emulator TCP stream) and the indicator's serial line (pymodbus).

Device time runs ahead of the controller's clock once a truck drives (60 x): a tracking
gap is raised by the controller's ticks against its own clock, so none is raised here,
and the coverage-gap truck is judged by its backlog alone.

Run it alone: ``pytest hil_tests/test_trucks_scenario.py`` (about 2 minutes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from controller import audit
from controller.site import current_site
from controller.storage.database import read_snapshot
from tools.gps_emulator import Detour, Fix, NmeaServer, Script, Window
from tools.jtt808_rig import add_terminal, start_gateway
from tools.netem import LinkProxy
from tools.procs import wait_until
from tools.rig import Rig
from tools.trucks_rig import (
    Sent,
    TruckLoop,
    api_post,
    drive_terminal,
    every,
    first_off_corridor,
    link_cut,
    standing,
    start_nmea_server,
    stream_nmea,
    weighed_trip,
)

SPEED = 60.0  # fix time per wall second
TARE, NET = 15000, 30000
# on the deck long enough for the controller's decision to come back before it drives off
STAY = ("--ramp-s", "0.3", "--settle-s", "0.3", "--stable-s", "6", "--leave-s", "0.3",
        "--gap-s", "0.5")
DEPOT, MILL = "c-grain-depot", "c-feed-mill"
DETOUR = Script(detours=(Detour(at_km=8.0),))
# 9..19 min after the stream's first fix (a minute before the weighing): the detour at
# 8 km (about 11..14 min) lies inside it
GAP = Window(9.0, 10.0)
GAP_DETOUR = Script(detours=(Detour(at_km=8.0),), coverage_gaps=(GAP,))
CUT = Window(15.0, 10.0)  # an agent's broker link cut, on the road to the depot
JTT_EVERY_S = 10  # a terminal's report interval
NOTHING = Script()  # nothing goes wrong


@dataclass(frozen=True)
class Case:
    device: str  # tracker device id
    plate: str
    lot: str
    corridor: str
    role: str  # clean, detour, gap_detour, held, swapped
    phone: str = ""  # a JT/T 808 terminal's SIM number; "" for an agent
    script: Script = NOTHING
    cut: Window | None = None  # its agent's broker link cut then (from the first fix)

    @property
    def jtt(self) -> bool:
        return bool(self.phone)


def _agent(n: int, corridor: str, role: str = "clean", script: Script = NOTHING,
           cut: Window | None = None) -> Case:
    return Case(f"trk-{n}", f"辽B3000{n}", f"LOT-{n}", corridor, role, script=script, cut=cut)


def _terminal(n: int, corridor: str, role: str, script: Script = NOTHING) -> Case:
    phone = f"1380013800{n}"
    return Case(f"jt-{phone}", f"辽B4000{n}", f"LOT-J{n}", corridor, role, phone, script)


# weighed in this order: the long trips to the grain depot (about 56 s of wall time) first
CASES = (
    _agent(1, DEPOT), _agent(2, DEPOT, "detour", DETOUR),
    _terminal(1, DEPOT, "gap_detour", GAP_DETOUR), _agent(3, DEPOT, cut=CUT),
    _terminal(2, DEPOT, "clean"),
    _agent(4, MILL), _agent(5, MILL), _agent(6, MILL), _agent(7, MILL), _agent(8, MILL),
    _terminal(3, MILL, "held"), _terminal(4, MILL, "swapped"),
)
ON_TRIP = [c for c in CASES if c.role in ("clean", "detour", "gap_detour")]
CLEAN = [c for c in CASES if c.role == "clean"]
HELD = next(c for c in CASES if c.role == "held")
SWAPPED = next(c for c in CASES if c.role == "swapped")
CUT_CASE = next(c for c in CASES if c.cut is not None)


@dataclass
class Run:
    """One truck in the scenario: its weighing, the fixes it was given and what went out."""

    case: Case
    weighing: dict[str, Any]
    fixes: list[Fix]
    sent: Sent
    done: Future[Any]


def _weighing(rig: Rig, plate: str) -> dict[str, Any] | None:
    found = rig.get("/api/v1/weighings", device_id="wb-out", plate=plate)
    return dict(found[0]) if found else None


def _fixes_for(case: Case, weighed_ms: int, seed: int) -> list[Fix]:
    site = current_site()
    if case.role == "held":  # stands on the out-gate deck, is denied, stays there
        return standing(site.zones["wb-out"], weighed_ms - 90_000, weighed_ms + 240_000,
                        JTT_EVERY_S, seed=seed, ign=True)
    if case.role == "swapped":  # the plate's real truck is parked at the feed mill
        return standing(site.zones["dest-feed-mill"], weighed_ms - 300_000,
                        weighed_ms + 300_000, 10, seed=seed)
    fixes = weighed_trip(site, case.corridor, weighed_ms, seed=seed, script=case.script)
    return every(fixes, JTT_EVERY_S) if case.jtt else fixes


def _stored(rig: Rig, device_id: str) -> list[list[int]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, "
                            "hdop_x10 FROM positions WHERE device_id=? ORDER BY ts_ms",
                            (device_id,)).fetchall()
    return [list(r) for r in rows]


def _newest_fix_of(rig: Rig, device_id: str, seq: int) -> int:
    with sqlite3.connect(rig.db_path) as conn:
        return int(conn.execute("SELECT max(ts_ms) FROM positions WHERE device_id=? AND seq=?",
                                (device_id, seq)).fetchone()[0])


def _raised_seq(rig: Rig, alert_id: int) -> int:
    with sqlite3.connect(rig.db_path) as conn:
        return int(conn.execute("SELECT raised_seq FROM alerts WHERE id=?",
                                (alert_id,)).fetchone()[0])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")



@pytest.mark.timeout(300)
def test_trucks_scenario_ten_trips_a_held_lot_and_a_swapped_plate(rig: Rig) -> None:
    t_start = time.monotonic()
    site = current_site()
    assert "wb-out" in site.devices and site.devices["wb-out"].role == "out"
    loop = TruckLoop()
    gateway = None
    servers: dict[str, NmeaServer] = {}
    proxy = LinkProxy(target_port=rig.broker.port).start()  # CUT_CASE's agent <-> broker
    cut_marks: list[tuple[str, float]] = []
    try:
        # -- the site: trackers, terminals, the out-gate; everything started at once
        servers.update({c.device: loop.call(start_nmea_server()) for c in CASES if not c.jtt})
        for c in CASES:
            if c.jtt:
                assert add_terminal(rig, c.phone) == c.device
            else:
                # the detouring truck's agent sends batches of 3 fixes (15 s of driving),
                # so its detour can be told within 30 s; the others the default 10
                tracker = rig.add_tracker(
                    c.device, source=f"tcp:127.0.0.1:{servers[c.device].port}",
                    driver={"batch_fixes": 3} if c.role == "detour" else None)
                if c.cut is not None:
                    tracker.config["mqtt"]["port"] = proxy.port
                    rig.write_config(tracker)
        out_gate = rig.add_weighbridge("wb-out", emulator_args=STAY, stable_s=0.4, poll_ms=50)
        out_gate.config["driver"]["barrier"] = "controller"
        rig.write_config(out_gate)
        for device_id in rig.agents:
            rig.start_agent(device_id)
        gateway = start_gateway(rig, answer_timeout_s=5.0)
        wait_until(lambda: all(s.clients == 1 for s in servers.values()), 60,
                   what="every tracker agent connected to its NMEA line")
        wait_until(lambda: all(rig.device(d)["status"] == "online" for d in rig.agents), 60,
                   what="every agent online")
        t_ready = time.monotonic()

        # -- orders through the API, the hold, then the trucks onto the deck in turn
        now = int(time.time() * 1000)
        orders = {}
        for c in CASES:
            orders[c.device] = api_post(rig, "/api/v1/orders", {
                "lot": c.lot, "plate": c.plate, "tracker_id": c.device,
                "destination": site.corridors[c.corridor].to_zone, "corridor": c.corridor,
                "window_start": now - 600_000, "window_end": now + 3 * 3_600_000,
                "expected_net_kg": NET})
        hold = api_post(rig, f"/api/v1/lots/{HELD.lot}/hold",
                        {"reason": "phytosanitary inspection pending"})
        assert hold["active"] is True
        assert out_gate.emulator is not None
        scale = out_gate.emulator.client
        for c in CASES:
            scale.truck(c.plate, TARE, NET)

        runs: dict[str, Run] = {}
        for seed, c in enumerate(CASES, 1):
            w: dict[str, Any] = wait_until(partial(_weighing, rig, c.plate), 60,
                                           what=f"{c.plate} weighed at wb-out")
            fixes = _fixes_for(c, int(w["device_ts"]), seed)
            sent = Sent()
            if c.jtt:
                assert gateway is not None
                fut: Future[Any] = loop.submit(drive_terminal(
                    "127.0.0.1", gateway.port, c.phone, fixes, SPEED, sent, plate=c.plate))
            else:
                on_fix = None
                if c.cut is not None:
                    cut_from = fixes[0].ts_ms + int(c.cut.at_min * 60_000)
                    on_fix = link_cut(proxy, cut_from, cut_from + int(c.cut.minutes * 60_000),
                                      cut_marks)
                fut = loop.submit(stream_nmea(servers[c.device], fixes, SPEED, sent, on_fix))
            runs[c.device] = Run(c, w, fixes, sent, fut)
        t_weighed = time.monotonic()

        for r in runs.values():
            r.done.result(timeout=150)  # every stream released, every terminal answered
        wait_until(lambda: {t["trip_id"]: t["status"] for t in rig.get(
            "/api/v1/trips", limit=100)} == {**{orders[c.device]["order_id"]: "arrived"
                                               for c in ON_TRIP},
                                            orders[SWAPPED.device]["order_id"]: "arrived"},
                   60, what="the ten trips and the swapped plate's trip arrived")
        t_arrived = time.monotonic()

        # -- positions: none lost, none twice, each one the emulator's
        for c in [*ON_TRIP, HELD, SWAPPED]:
            r = runs[c.device]
            stored = _stored(rig, c.device)
            assert [s[0] for s in stored] == sorted({s[0] for s in stored}), c.device
            by_ts = {f.ts_ms: f for f in r.fixes}
            if c.jtt:  # a terminal keeps every fix: all of them stored once
                assert [s[0] for s in stored] == [f.ts_ms for f in r.fixes], c.device
                assert all(s[1:3] == [by_ts[s[0]].lat_e6, by_ts[s[0]].lon_e6] for s in stored)
                assert r.done.result().unsent == 0
            else:  # an agent thins (5 s moving, 60 s parked): what it says it kept
                def settled(dev: str = c.device, n: int = len(r.fixes)) -> bool:
                    h = rig.device(dev)["health"] or {}
                    return bool(h.get("fixes") == n and len(_stored(rig, dev))
                                == h["fixes_kept"] - h["batch_pending"])
                wait_until(settled, 30, what=f"{c.device}'s kept fixes stored")
                health = rig.device(c.device)["health"]
                assert health["fixes_lost"] == 0 and health["batches_refused"] == 0
                assert all(health[k] == 0 for k in health if k.startswith("nmea_")
                           and k != "nmea_ok"), health
                assert all(s == by_ts[s[0]].row() for s in stored), c.device

        # the agent cut off for 10 min of device time: its outbox held them, all came after
        assert [m for m, _ in cut_marks] == ["cut", "pass"]
        assert rig.device(CUT_CASE.device)["health"]["links_lost"] >= 1
        assert CUT_CASE.cut is not None
        cut_from = runs[CUT_CASE.device].fixes[0].ts_ms + int(CUT_CASE.cut.at_min * 60_000)
        with sqlite3.connect(rig.db_path) as conn:
            held_back = conn.execute(
                "SELECT count(*), min(received_ms) FROM positions WHERE device_id=? AND "
                "ts_ms>=? AND ts_ms<?", (CUT_CASE.device, cut_from,
                                         cut_from + int(CUT_CASE.cut.minutes * 60_000))
            ).fetchone()
        assert held_back[0] >= 100  # 10 min at a fix per 5 s, stored once (above)
        assert held_back[1] >= int(cut_marks[1][1] * 1000)  # none crossed the cut link

        # -- the gate: every command acknowledged, the coil opened for all but the held lot
        commands = rig.get("/api/v1/commands", device_id="wb-out")
        assert len(commands) == len(CASES)
        assert all(cmd["state"] == "acked" for cmd in commands), [
            (cmd["body"]["weighing_seq"], cmd["body"]["action"], cmd["state"], cmd["ack"],
             cmd["attempts"]) for cmd in commands]
        by_seq = {cmd["body"]["weighing_seq"]: cmd for cmd in commands}
        visits = scale.wait_visits(len(CASES), timeout=30)
        assert [v["plate"] for v in visits] == [c.plate for c in CASES]
        for c, v in zip(CASES, visits, strict=True):
            cmd = by_seq[runs[c.device].weighing["seq"]]
            if c is HELD:
                assert (cmd["body"]["action"], cmd["ack"]["result"]) == ("deny", "done")
                assert v["barrier_opened_ts"] is None
                assert all(on is False for _, on in v["barrier_writes"])
            else:
                assert (cmd["body"]["action"], cmd["ack"]["result"]) == ("open", "done"), cmd
                assert v["barrier_opened_ts"] is not None, v
        trips = {t["trip_id"]: t for t in rig.get("/api/v1/trips", limit=100)}
        assert orders[HELD.device]["order_id"] not in trips  # no trip departs
        assert rig.get(f"/api/v1/orders/{orders[HELD.device]['order_id']}")["status"] == "open"
        for c in ON_TRIP:  # every trip departed before its truck drove off the deck
            trip = trips[orders[c.device]["order_id"]]
            assert trip["departed_ms"] < int(runs[c.device].weighing["device_ts"]) + 30_000

        # -- each clean trip's record: departed, arrived, nothing between, no alert
        for c in CLEAN:
            detail = rig.get(f"/api/v1/trips/{orders[c.device]['order_id']}")
            assert [e["event"] for e in detail["events"]] == ["departed", "arrived"], detail
            assert detail["alerts"] == [] and detail["arrived_ts"] is not None
        for c in ON_TRIP:  # and the detours' records: left the corridor, came back
            if c.role != "clean":
                detail = rig.get(f"/api/v1/trips/{orders[c.device]['order_id']}")
                assert [e["event"] for e in detail["events"]] == [
                    "departed", "corridor_deviation", "corridor_rejoined", "arrived"], detail

        # -- the alerts: exactly these, none about a clean trip
        alerts = rig.get("/api/v1/alerts", all="true", limit=1000)
        by_device: dict[str, list[dict[str, Any]]] = {}
        for a in alerts:
            by_device.setdefault(a["device_id"], []).append(a)
        clean_ids = {c.device for c in CLEAN} | {orders[c.device]["order_id"] for c in CLEAN} \
            | {c.plate for c in CLEAN}
        about_clean = [a for a in alerts if a["device_id"] in clean_ids
                       or clean_ids & {str(v) for v in a["detail"].values()}]
        assert about_clean == [], about_clean

        gate_alerts = sorted((a["code"], a["detail"].get("plate")) for a in by_device["wb-out"])
        assert gate_alerts == sorted([("gate_denied", HELD.plate),
                                      ("tracker_not_at_weighbridge", SWAPPED.plate)])
        [denied] = [a for a in by_device["wb-out"] if a["code"] == "gate_denied"]
        assert denied["detail"]["reasons"][0]["code"] == "lot_on_hold"
        [swap] = [a for a in by_device["wb-out"] if a["code"] == "tracker_not_at_weighbridge"]
        assert swap["severity"] == "critical" and swap["detail"]["verdict"] == "absent", swap
        assert swap["subject"].endswith(str(runs[SWAPPED.device].weighing["seq"]))
        assert HELD.device not in by_device  # stood at the deck: present, no trip

        # the agent's detour: raised within 30 s of device time after its first fix out
        detour = runs["trk-2"]
        corridor = site.corridors[DEPOT]
        trip_id = orders["trk-2"]["order_id"]
        # (a multipath jump on the road is outside too, but alone: the detour's fixes)
        first_out = first_off_corridor(corridor, [f for f in detour.fixes if f.phase == "detour"],
                                       after_ms=trips[trip_id]["departed_ms"])
        assert first_out is not None
        [dev_alert] = by_device["trk-2"]
        assert dev_alert["code"] == "corridor_deviation" and not dev_alert["active"]
        assert dev_alert["detail"]["trip_id"] == trip_id
        from_ts = int(dev_alert["detail"]["from_ts"])
        assert first_out.ts_ms <= from_ts <= first_out.ts_ms + 30_000
        told_at = _newest_fix_of(rig, "trk-2", _raised_seq(rig, dev_alert["id"]))
        assert told_at - first_out.ts_ms <= 30_000, (told_at, first_out.ts_ms)
        detour_told_s = (told_at - first_out.ts_ms) / 1000

        # the terminal's detour inside its coverage gap: alerted once the backlog landed
        gap_run = next(r for r in runs.values() if r.case.role == "gap_detour")
        gap_from = gap_run.fixes[0].ts_ms + int(GAP.at_min * 60_000)
        gap_to = gap_from + int(GAP.minutes * 60_000)
        first_out = first_off_corridor(
            corridor, [f for f in gap_run.sent.fixes if f.phase == "detour"], after_ms=gap_from)
        assert first_out is not None and gap_from <= first_out.ts_ms < gap_to
        [gap_alert] = by_device[gap_run.case.device]
        assert gap_alert["code"] == "corridor_deviation" and not gap_alert["active"]
        assert first_out.ts_ms <= int(gap_alert["detail"]["from_ts"]) <= first_out.ts_ms + 30_000
        assert gap_run.sent.link_back_wall is not None
        assert gap_alert["raised_ms"] >= int(gap_run.sent.link_back_wall * 1000)
        # raised by a message that carried fixes of the gap: the blind-area backlog
        raised_by = _newest_fix_of(rig, gap_run.case.device,
                                   _raised_seq(rig, gap_alert["id"]))
        assert gap_from <= raised_by < gap_to, (gap_from, raised_by, gap_to)
        gap_told_s = (int(gap_alert["detail"]["from_ts"]) - first_out.ts_ms) / 1000
        gap_landed_wall_s = gap_alert["raised_ms"] / 1000 - gap_run.sent.link_back_wall
        stats = gap_run.done.result()
        assert stats.batches >= 1 and stats.unsent == 0  # the gap went as blind-area batches

        # -- the store audits clean
        with read_snapshot(rig.db_path) as conn:
            report = audit.audit_store(conn)
        assert report.clean, [m.as_json() for m in report.mismatches[:5]]
        t_end = time.monotonic()

        cpu = {d: round(_cpu_s(a.proc.pid), 1) for d, a in rig.agents.items()
               if a.proc is not None and a.proc.poll() is None}
        assert rig.controller is not None and gateway.proc is not None
        cpu["controller"] = round(_cpu_s(rig.controller.pid), 1)
        cpu["jtt808-gateway"] = round(_cpu_s(gateway.proc.pid), 1)
        cpu["mosquitto"] = round(_cpu_s(rig.broker.proc.pid), 1) if rig.broker.proc else -1
        print(json.dumps({
            "wall_s": {"setup": round(t_ready - t_start, 1),
                       "weighings": round(t_weighed - t_ready, 1),
                       "trips": round(t_arrived - t_weighed, 1),
                       "checks": round(t_end - t_arrived, 1),
                       "total": round(t_end - t_start, 1)},
            "cpu_s": cpu, "load": os.getloadavg(),
            "detour_told_after_device_s": detour_told_s,
            "gap_detour_from_after_first_out_s": gap_told_s,
            "gap_detour_raised_after_link_back_wall_s": round(gap_landed_wall_s, 2),
            "cut_link_fixes_held_back": held_back[0],
            "weighing_to_ack_ms": [by_seq[r.weighing["seq"]]["acked_ms"]
                                   - int(r.weighing["device_ts"]) for r in runs.values()],
            "fixes_stored": {c.device: len(_stored(rig, c.device)) for c in ON_TRIP},
            "alerts": [(a["device_id"], a["code"], a["active"]) for a in alerts]}))
    finally:
        proxy.stop()
        for server in servers.values():
            loop.call(server.close())
        loop.close()
        if gateway is not None:
            gateway.stop()
            print(f"--- gateway log ---\n{gateway.log_text()[-3000:]}")

