"""`portwatch demo`: a whole demo site on this machine, on embedded defaults.

Mosquitto, two emulated weighbridges (two indicator models with different
register maps) with trucks arriving, their agents under the real MicroPython
interpreter with a 96 KiB heap, and the controller with its API; it prints where
to look and then every weighing as the controller stores it.
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
from controller.storage import open_store
from tools.demo_panel import Gate, SiteInfo, print_banner, write_env_file
from tools.emulators.weighbridge import Timing
from tools.procs import port_open, wait_until
from tools.rig import Rig, RigError

SITE = "dalian-north"
GATES = (("wb-gate1", "portwatch-sim"), ("wb-gate2", "float32-le-sim"))


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


def _emulator_args(p: Pacing) -> tuple[str, ...]:
    t = p.timing
    return ("--ramp-s", repr(t.ramp_s), "--settle-s", repr(t.settle_s),
            "--stable-s", repr(t.stable_s), "--leave-s", repr(t.leave_s),
            "--gap-s", repr(t.gap_s), "--auto", "100000", "--auto-every", repr(p.every_s))


def _tokens(rig: Rig) -> dict[str, str]:
    db = open_store(rig.db_path)
    try:
        return {"admin": rig.admin_token,
                "operator": auth.create_token(db, name="demo-operator", role="operator"),
                "auditor": auth.create_token(db, name="demo-auditor", role="auditor")}
    finally:
        db.close()


def _site_info(rig: Rig, tokens: dict[str, str], every_s: float) -> SiteInfo:
    gates = []
    for device_id, agent in rig.agents.items():
        assert agent.emulator is not None
        gates.append(Gate(device_id, agent.emulator.map_name, agent.emulator.modbus_port,
                          agent.emulator.control_port))
    return SiteInfo(site=SITE, api_url=rig.api_url, tokens=tokens,
                    db_path=rig.db_path.resolve(), broker_port=rig.broker.port,
                    broker_login=rig.watch_account("demo-watch"),
                    workdir=rig.workdir.resolve(), gates=tuple(gates), trucks_every_s=every_s,
                    broker_ca=rig.ca)


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


def run_demo(*, workdir: Path, api_port: int, trucks_every_s: float, keep: bool,
             run_for_s: float, console: Console) -> None:
    """Start the site, show what it does, stop it all on Ctrl-C (or after ``run_for_s``)."""
    pace = pacing(trucks_every_s)
    if port_open(api_port):
        raise DemoError(f"port {api_port} is already in use: pass --api-port with a free port")
    if not keep and workdir.exists():
        shutil.rmtree(workdir)
    rig = Rig(workdir, site=SITE, api_port=api_port)
    try:
        with console.status("starting mosquitto and the controller"):
            rig.start()
        tokens = _tokens(rig)
        with console.status("starting emulated weighbridges and their agents (MicroPython)"):
            for device_id, map_name in GATES:
                rig.add_weighbridge(device_id, map_name=map_name,
                                    stable_s=pace.agent_stable_s, poll_ms=pace.agent_poll_ms,
                                    health_interval_s=5, emulator_args=_emulator_args(pace))
                rig.start_agent(device_id)
            for device_id, _ in GATES:
                wait_until(_online(rig, device_id), 30, what=f"{device_id} to come online")
        info = _site_info(rig, tokens, trucks_every_s)
        write_env_file(info)
        print_banner(console, info)
        seen: set[tuple[str, int]] = set()
        deadline = time.monotonic() + run_for_s if run_for_s else None
        while deadline is None or time.monotonic() < deadline:
            _print_new(rig, console, seen)
            for device_id, agent in rig.agents.items():
                if not agent.running:
                    raise DemoError(f"agent {device_id} stopped; see {agent.log_path}")
            time.sleep(1)  # a display refresh, not synchronisation
    except KeyboardInterrupt:
        console.print("stopping")
    except (RigError, AssertionError) as exc:
        raise DemoError(f"{exc} (logs in {workdir})") from exc
    finally:
        rig.stop()
