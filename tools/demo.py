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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel

from controller import auth, store
from tools.procs import port_open, wait_until
from tools.rig import Rig, RigError

SITE = "dalian-north"
GATES = (("wb-gate1", "portwatch-sim"), ("wb-gate2", "float32-le-sim"))


class DemoError(RuntimeError):
    """The demo could not start; the message says what to change."""


def _emulator_args(trucks_every_s: float) -> tuple[str, ...]:
    return ("--ramp-s", "1.5", "--settle-s", "1.5", "--stable-s", "3", "--leave-s", "1.5",
            "--gap-s", "1", "--auto", "100000", "--auto-interval", str(trucks_every_s))


def _tokens(rig: Rig) -> dict[str, str]:
    db = store.connect(rig.db_path)
    try:
        return {"admin": rig.admin_token,
                "operator": auth.create_token(db, name="demo-operator", role="operator"),
                "auditor": auth.create_token(db, name="demo-auditor", role="auditor")}
    finally:
        db.close()


def _banner(rig: Rig, tokens: dict[str, str]) -> Panel:
    url = rig.api_url
    auth_h = "-H \"Authorization: Bearer $PW_TOKEN\""
    lines = [
        f"API docs      {url}/docs",
        f"token         export PW_TOKEN={tokens['operator']}",
        f"devices       curl {auth_h} {url}/api/v1/devices",
        f"weighings     curl {auth_h} {url}/api/v1/weighings",
        f"other tokens  admin {tokens['admin']}",
        f"              auditor {tokens['auditor']}",
        f"device table  portwatch device list --db {rig.db_path}",
        f"broker        mqtt://127.0.0.1:{rig.broker.port}  (mosquitto_sub -p {rig.broker.port} "
        f"-u {rig.controller_credentials[0]} -P {rig.controller_credentials[1]} -t 'pw/v1/#' -v)",
        f"logs          {rig.workdir}/*.log",
    ]
    for device_id, agent in rig.agents.items():
        assert agent.emulator is not None
        lines.append(f"{device_id:<13} indicator modbus 127.0.0.1:{agent.emulator.modbus_port} "
                     f"({agent.emulator.map_name}), control 127.0.0.1:"
                     f"{agent.emulator.control_port}")
    return Panel("\n".join(lines), title=f"portwatch demo site {SITE}: running",
                 subtitle="Ctrl-C stops everything")


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
                rig.add_weighbridge(device_id, map_name=map_name, stable_s=2, poll_ms=200,
                                    health_interval_s=5,
                                    emulator_args=_emulator_args(trucks_every_s))
                rig.start_agent(device_id)
            for device_id, _ in GATES:
                wait_until(_online(rig, device_id), 30, what=f"{device_id} to come online")
        console.print(_banner(rig, tokens))
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
