"""`portwatch demo`: a whole demo site on this machine, on embedded defaults.

The bundled demo site (controller/site/sites/demo-grain-port.yaml): Mosquitto, its two
weighbridges emulated with two indicator models (two register maps), ``wb-in`` with
trucks arriving and its barrier local, ``wb-out`` the out-gate whose barrier the
controller opens; their agents under the real MicroPython interpreter with a 96 KiB heap;
the controller with its API; the JT/T 808 gateway; and trucks on trips
(tools/demo_trucks.py): transfer orders, trackers (agents fed by the GPS emulator, and a
JT/T 808 terminal), the out-gate, the drive on an accelerated clock, one detour; and a
vessel and a train (tools/demo_vessel.py): a declared grain lot unloading while the lab
agent reports the lab emulator's clean samples, and a 20-car train of it past the rail
reader agent against its manifest. It prints where to look, then every weighing, trip
departure and arrival, sample, the train's passage and alert as stored.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from rich.console import Console

from controller import auth
from controller.errors import DeviceExists
from controller.site import current_site
from controller.storage import open_store
from tools.demo_panel import Gate, SiteInfo, Trips, print_banner, write_env_file
from tools.demo_trucks import OFFICE_DESTINATION, OFFICE_ID, Fleet, FleetError
from tools.demo_vessel import Vessel, VesselError
from tools.demo_vessel import panel_info as vessel_panel_info
from tools.emulators.weighbridge import Timing
from tools.jtt808_rig import GatewayProcess, start_gateway
from tools.procs import port_open, wait_until
from tools.rig import Rig, RigError

# the site's weighbridges: id, indicator model (register map), barrier
IN_GATE, OUT_GATE = ("wb-in", "portwatch-sim", "local"), ("wb-out", "float32-le-sim",
                                                          "controller")
GATES = (IN_GATE, OUT_GATE)


class DemoError(RuntimeError):
    """The demo could not start; the message says what to change."""


# A truck's crossing at the demo's natural pace, then the least empty deck: one truck can
# arrive every 8.5 s. The agents wait AGENT_STABLE_S of stable weight, 1 s less than a
# truck stands still, so every truck is weighed.
DEMO_TIMING = Timing(ramp_s=1.5, settle_s=1.5, stable_s=3.0, leave_s=1.5, gap_s=1.0)
AGENT_STABLE_S, AGENT_POLL_MS = 2.0, 200
# Faster, every phase shrinks alike; below this the agents' stability window (0.94 s at
# 4 s) would come within a few polls of how long a truck stands still.
MIN_TRUCKS_EVERY_S = 4.0


@dataclass(frozen=True)
class Pacing:
    """How the demo's trucks cross so that one arrives every ``every_s`` seconds."""

    every_s: float
    timing: Timing
    agent_stable_s: float  # the agents' stability window, shorter than a truck stands still
    agent_poll_ms: int


def pacing(every_s: float) -> Pacing:
    """The crossing timing and agent settings for a truck every ``every_s`` s per gate."""
    if not every_s >= MIN_TRUCKS_EVERY_S:  # also refuses NaN
        raise DemoError(f"--trucks-every-s {every_s:g} is too short: a truck needs at least "
                        f"{MIN_TRUCKS_EVERY_S:g} s to drive on, settle, be weighed and leave")
    natural = DEMO_TIMING.crossing_s + DEMO_TIMING.gap_s
    if every_s >= natural:  # the natural pace, with a longer empty deck between trucks
        return Pacing(every_s, DEMO_TIMING, AGENT_STABLE_S, AGENT_POLL_MS)
    k = every_s / natural
    timing = Timing(**{f.name: getattr(DEMO_TIMING, f.name) * k for f in fields(Timing)})
    # faster polls keep as many readings within the shorter stable phase
    return Pacing(every_s, timing, round(AGENT_STABLE_S * k, 3), AGENT_POLL_MS // 2)


# The out-gate's trucks are the fleet's, put on the deck one at a time: each stands still
# long enough for the weighing, the controller's decision and its barrier command.
OUT_GATE_TIMING = Timing(ramp_s=1.0, settle_s=1.0, stable_s=6.0, leave_s=1.0, gap_s=1.0)


def _timing_args(t: Timing) -> tuple[str, ...]:
    return ("--ramp-s", repr(t.ramp_s), "--settle-s", repr(t.settle_s),
            "--stable-s", repr(t.stable_s), "--leave-s", repr(t.leave_s),
            "--gap-s", repr(t.gap_s))


def _emulator_args(p: Pacing) -> tuple[str, ...]:
    return (*_timing_args(p.timing), "--auto", "100000", "--auto-every", repr(p.every_s))


def _tokens(rig: Rig) -> dict[str, str]:
    db = open_store(rig.db_path)
    try:
        return {"admin": rig.admin_token,
                "operator": auth.create_token(db, name="demo-operator", role="operator"),
                "auditor": auth.create_token(db, name="demo-auditor", role="auditor")}
    finally:
        db.close()


def _site_info(rig: Rig, tokens: dict[str, str], every_s: float, fleet: Fleet,
               gateway: GatewayProcess) -> SiteInfo:
    gates = []
    for device_id, _, barrier in GATES:
        emulator = rig.agents[device_id].emulator
        assert emulator is not None
        gates.append(Gate(device_id, emulator.map_name, emulator.modbus_port,
                          emulator.control_port, barrier))
    assert fleet.office_config is not None
    trips = Trips(trackers=tuple((t.tracker_id, t.jtt808) for t in fleet.fleet),
                  speed=fleet.speed, gateway_port=gateway.port, office_id=OFFICE_ID,
                  office_destination=OFFICE_DESTINATION,
                  office_config=fleet.office_config.resolve())
    return SiteInfo(site=rig.site, api_url=rig.api_url, tokens=tokens,
                    db_path=rig.db_path.resolve(), broker_port=rig.broker.port,
                    broker_login=rig.watch_account("demo-watch"),
                    workdir=rig.workdir.resolve(), gates=tuple(gates), trucks_every_s=every_s,
                    broker_ca=rig.ca, trips=trips, vessel=vessel_panel_info())


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _print_trips(rig: Rig, console: Console, seen: dict[str, str]) -> None:
    """A line per trip departed, arrived or cancelled since the last call."""
    for t in reversed(rig.get("/api/v1/trips", limit=100)):
        tid, status = t["trip_id"], t["status"]
        if tid not in seen:
            console.print(f"{_stamp()} [cyan]trip[/] {tid} {t['plate']} departed "
                          f"{t['gate_device']} #{t['weighing_seq']} net {t['net_kg']} kg -> "
                          f"{t['destination']} via {t['corridor']} ({t['tracker_id']})",
                          highlight=False, soft_wrap=True)
            seen[tid] = "in_transit"
        if status != seen[tid]:
            seen[tid] = status
            if status == "arrived":
                minutes = (t["arrived_ts"] - t["departed_ms"]) / 60_000
                console.print(f"{_stamp()} [green]trip[/] {tid} {t['plate']} arrived at "
                              f"{t['destination']} ({minutes:.0f} min of truck time)",
                              highlight=False, soft_wrap=True)
            else:
                console.print(f"{_stamp()} [yellow]trip[/] {tid} {t['plate']} {status}: "
                              f"{t['end_reason'] or ''}", highlight=False, soft_wrap=True)


def _print_alerts(rig: Rig, console: Console, seen: dict[int, bool]) -> None:
    """A line per alert raised, and per alert cleared, since the last call."""
    for a in reversed(rig.get("/api/v1/alerts", all="true", limit=50)):
        aid, active = int(a["id"]), bool(a["active"])
        colour = "red" if a["severity"] == "critical" else "yellow"
        trip = a["detail"].get("trip_id")
        where = f" trip {trip}" if trip else (f" {a['subject']}" if a["subject"] else "")
        if aid not in seen:
            console.print(f"{_stamp()} [{colour}]alert #{aid}[/] {a['severity']} {a['code']} "
                          f"{a['device_id']}{where}", highlight=False, soft_wrap=True)
            if active and a["code"] == "corridor_deviation":
                console.print(f"         operator: portwatch alert ack {aid} --comment "
                              '"calling the driver"', highlight=False, soft_wrap=True)
        if not active and seen.get(aid, True):
            console.print(f"{_stamp()} [green]alert #{aid}[/] {a['code']} {a['device_id']}"
                          f"{where} cleared by {a['cleared_by']}", highlight=False, soft_wrap=True)
        seen[aid] = active


def _print_new(rig: Rig, console: Console, seen: set[tuple[str, int]]) -> None:
    rows: list[dict[str, Any]] = rig.get("/api/v1/weighings", limit=50)
    for w in reversed(rows):
        key = (w["device_id"], w["seq"])
        if key in seen:
            continue
        seen.add(key)
        console.print(f"{time.strftime('%H:%M:%S')} {w['device_id']} #{w['seq']:<4} "
                      f"{w['plate']:<9} gross {w['gross_kg']:>6}  tare {w['tare_kg']:>6}  "
                      f"net {w['net_kg']:>6} kg")
    for a in rig.get("/api/v1/alarms", limit=20):
        key = (a["device_id"], -a["seq"])
        if key not in seen:
            seen.add(key)
            console.print(f"{time.strftime('%H:%M:%S')} [yellow]alarm[/] {a['device_id']} "
                          f"{a['alarm']} {a['state']}")


def _online(rig: Rig, device_id: str) -> Callable[[], bool]:
    return lambda: bool(rig.device(device_id)["status"] == "online")


def _start_weighbridges(rig: Rig, pace: Pacing) -> None:
    for device_id, map_name, barrier in GATES:
        args = (_emulator_args(pace) if barrier == "local"
                else _timing_args(OUT_GATE_TIMING))  # the fleet puts its trucks on wb-out
        agent = rig.add_weighbridge(device_id, map_name=map_name,
                                    stable_s=pace.agent_stable_s, poll_ms=pace.agent_poll_ms,
                                    health_interval_s=5, emulator_args=args)
        agent.config["driver"]["barrier"] = barrier
        rig.write_config(agent)
        rig.start_agent(device_id)
    for device_id, _, _ in GATES:
        wait_until(_online(rig, device_id), 30, what=f"{device_id} to come online")


def run_demo(*, workdir: Path, api_port: int, trucks_every_s: float, keep: bool,
             run_for_s: float, console: Console) -> None:
    """Start the site, show what it does, stop it all on Ctrl-C (or after ``run_for_s``)."""
    pace = pacing(trucks_every_s)
    if port_open(api_port):
        raise DemoError(f"port {api_port} is already in use: pass --api-port with a free port")
    if not keep and workdir.exists():
        shutil.rmtree(workdir)
    site = current_site()
    rig = Rig(workdir, site=site.id, api_port=api_port)
    fleet: Fleet | None = None
    vessel: Vessel | None = None
    gateway: GatewayProcess | None = None
    try:
        with console.status("starting mosquitto and the controller"):
            rig.start()
        tokens = _tokens(rig)
        with console.status("starting emulated weighbridges and their agents (MicroPython)"):
            _start_weighbridges(rig, pace)
        with console.status("starting the JT/T 808 gateway, the office and the trucks' "
                            "trackers"):
            gateway = start_gateway(rig)
            out_emulator = rig.agents[OUT_GATE[0]].emulator
            assert out_emulator is not None
            fleet = Fleet(rig, site, tokens["operator"], out_emulator.client, gateway.port)
            fleet.start()
            fleet.prepare()
        with console.status("declaring the vessel's lot, starting the lab and the rail reader"):
            vessel = Vessel(rig, tokens["operator"])
            vessel.prepare()
        info = _site_info(rig, tokens, trucks_every_s, fleet, gateway)
        write_env_file(info)
        print_banner(console, info)
        fleet.run()
        vessel.run()
        seen: set[tuple[str, int]] = set()
        trips: dict[str, str] = {}
        alerts: dict[int, bool] = {}
        deadline = time.monotonic() + run_for_s if run_for_s else None
        while deadline is None or time.monotonic() < deadline:
            while not fleet.messages.empty():
                console.print(fleet.messages.get(), highlight=False, soft_wrap=True)
            _print_new(rig, console, seen)
            _print_trips(rig, console, trips)
            _print_alerts(rig, console, alerts)
            for line in vessel.news():
                console.print(line, highlight=False, soft_wrap=True)
            for device_id, _, _ in GATES:
                agent = rig.agents[device_id]
                if not agent.running:
                    raise DemoError(f"agent {device_id} stopped; see {agent.log_path}")
            if fleet.errors or vessel.errors:
                raise DemoError((fleet.errors + vessel.errors)[0])
            time.sleep(1)  # a display refresh, not synchronisation
    except KeyboardInterrupt:
        console.print("stopping")
    except DeviceExists as exc:  # --keep: the store has the last run's devices
        raise DemoError(f"{exc}: the demo provisions its devices afresh, so it cannot run "
                        "on a kept store; run it without --keep (the store is then new)") from exc
    except (RigError, FleetError, VesselError, AssertionError) as exc:
        raise DemoError(f"{exc} (logs in {workdir})") from exc
    finally:
        if vessel is not None:
            vessel.stop()
        if fleet is not None:
            fleet.stop()
        if gateway is not None:
            gateway.stop()
        rig.stop()
