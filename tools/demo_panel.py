"""What `portwatch demo` prints once its site runs: a short panel, then commands to copy.

The commands stay outside the panel, one per line and never wrapped, so they can be
copied from any terminal width or from a log; they are also written to an env file
to ``source``. Every command runs as printed in a fresh shell: `portwatch` is
written as such only when a fresh shell would find this checkout's entry point on
its PATH, otherwise as the entry point's absolute path.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.panel import Panel

__all__ = ["Gate", "SiteInfo", "Trips", "command_lines", "env_exports", "panel",
           "portwatch_command", "print_banner", "write_env_file"]


@dataclass(frozen=True)
class Gate:
    """One emulated weighbridge of the demo site, as its agent and a user reach it."""

    device_id: str
    map_name: str
    modbus_port: int
    control_port: int
    barrier: str = "local"  # "controller": the controller opens it (the out-gate)


@dataclass(frozen=True)
class Trips:
    """The demo's trucks on trips: their trackers, the clock, the gateway and the office."""

    trackers: tuple[tuple[str, bool], ...]  # (device id, a JT/T 808 terminal) of the first
    speed: float  # truck seconds per wall second while driving
    gateway_port: int  # the JT/T 808 gateway's TCP port
    office_id: str  # the destination customs office provisioned by the demo
    office_destination: str
    office_config: Path  # its config file (0600: its broker password)


@dataclass(frozen=True)
class Vessel:
    """The demo's vessel and train (tools/demo_vessel.py): its lot, the lab, the train."""

    lot: str
    vessel: str
    lab: str  # the lab analyzer's device id
    sample_every_s: float
    train: str
    cars: int
    reader: str  # the rail reader's device id
    train_after_s: float


@dataclass(frozen=True)
class SiteInfo:
    """Everything the banner shows; paths absolute, so commands run from any directory."""

    site: str
    api_url: str  # http://127.0.0.1:8000
    tokens: dict[str, str]  # role -> token: operator, admin, auditor
    db_path: Path
    broker_port: int
    broker_login: tuple[str, str]  # a read-only watcher's (the controller's would oust it)
    workdir: Path
    gates: tuple[Gate, ...]
    trucks_every_s: float
    broker_ca: Path | None = None  # the site CA the broker's certificate chains to (TLS)
    trips: Trips | None = None
    vessel: Vessel | None = None

    @property
    def env_file(self) -> Path:
        return self.workdir / "env.sh"


def portwatch_command(entry: Path | None = None, path: str | None = None) -> str:
    """How a fresh shell runs this checkout's `portwatch`: the bare name if its PATH finds it.

    ``entry`` is the entry point (default: this environment's ``bin/portwatch``) and
    ``path`` the PATH to search (default: $PATH). The entry point's own directory is left
    out of the search: it is on PATH only in a shell that activated the virtualenv, and
    a fresh shell has not.
    """
    entry = entry or Path(sys.prefix) / "bin" / "portwatch"
    if not entry.exists():  # not installed as a script: the module always works
        return f"{shlex.quote(sys.executable)} -m tools.cli"
    own_dir = os.path.realpath(entry.parent)
    search = os.pathsep.join(
        d for d in (os.environ.get("PATH", "") if path is None else path).split(os.pathsep)
        if d and os.path.realpath(d) != own_dir)
    found = shutil.which("portwatch", path=search)
    if found and os.path.realpath(found) == os.path.realpath(entry):
        return "portwatch"
    return shlex.quote(str(entry.absolute()))


def env_exports(info: SiteInfo) -> list[str]:
    """``export NAME=value`` lines for the demo's API, tokens and store."""
    values = {
        "PW_API": info.api_url,
        "PW_TOKEN": info.tokens["operator"],
        "PW_ADMIN_TOKEN": info.tokens["admin"],
        "PW_AUDITOR_TOKEN": info.tokens["auditor"],
        "PORTWATCH_DB": str(info.db_path),
        "PORTWATCH_SITE": info.site,
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


def write_env_file(info: SiteInfo) -> Path:
    """Write the exports to ``info.env_file`` (mode 0600: it holds tokens); return its path."""
    path = info.env_file
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"# portwatch demo site {info.site}: `source {shlex.quote(str(path))}` sets the\n"
            "# API address, the tokens (PW_TOKEN: operator) and the store for `portwatch`.\n"
            + "\n".join(env_exports(info)) + "\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def command_lines(info: SiteInfo, pw: str | None = None) -> list[str]:
    """The commands printed below the panel, each complete on one line, in running order."""
    pw = pw or portwatch_command()
    auth = '-H "Authorization: Bearer $PW_TOKEN"'
    db = shlex.quote(str(info.db_path))
    user, password = info.broker_login
    lines = [
        *env_exports(info),
        f"curl {auth} {info.api_url}/api/v1/devices",
        f"curl {auth} {info.api_url}/api/v1/weighings",
    ]
    if info.trips is not None:
        lines += [f"curl {auth} {info.api_url}/api/v1/trips",
                  f"curl {auth} {info.api_url}/api/v1/alerts"]
    lines += [
        f"{pw} device list --db {db}",
    ]
    if info.trips is not None:
        office = shlex.quote(str(info.trips.office_config))
        lines += [
            f"{pw} order list --db {db}",
            f"{pw} trip list --db {db}",
            f"{pw} alert list --db {db}",
            f'{pw} alert ack ID --comment "calling the driver" --db {db}',
            f"{pw} office listen --office {info.trips.office_id} --config {office}",
        ]
    if info.vessel is not None:
        v = info.vessel
        lines += [f"{pw} lot show {v.lot} --db {db}",
                  f"{pw} sample list --lot {v.lot} --db {db}",
                  f"{pw} train show {v.train} --db {db}"]
    lines += [
        *(f"{pw} emulator log --control 127.0.0.1:{g.control_port}" for g in info.gates),
        f"mosquitto_sub -h 127.0.0.1 -p {info.broker_port} "
        + (f"--cafile {shlex.quote(str(info.broker_ca))} " if info.broker_ca else "")
        + f"-u {shlex.quote(user)} -P {shlex.quote(password)} -t 'pw/v1/#' -v",
        f"tail -f {shlex.quote(str(info.workdir))}/*.log",
    ]
    return lines


def _truck_lines(info: SiteInfo) -> list[str]:
    if info.trips is None:
        return [f"trucks       one every {info.trucks_every_s:g} s on each weighbridge"]
    inbound = next((g.device_id for g in info.gates if g.barrier == "local"), "wb-in")
    return [f"trucks       one every {info.trucks_every_s:g} s on {inbound}; out-gate trucks "
            "leave on trips"]


def _trip_lines(trips: Trips | None) -> list[str]:
    if trips is None:
        return []
    agents = [t for t, jtt in trips.trackers if not jtt]
    terminals = [t for t, jtt in trips.trackers if jtt]
    return [
        f"trips        {len(trips.trackers)} trucks, driving at {trips.speed:g}x; more keep "
        "coming",
        f"trackers     {' '.join(agents)} (agents, NMEA)",
        *(f"             {t} (JT/T 808)" for t in terminals),
        f"JT/T 808     gateway :{trips.gateway_port}",
        f"office       {trips.office_id} for {trips.office_destination}: listen as below",
    ]


def _vessel_lines(v: Vessel | None) -> list[str]:
    if v is None:
        return []
    return [f"vessel       {v.vessel}: lot {v.lot} unloading at berth-1",
            f"lab          {v.lab} samples every {v.sample_every_s:g} s",
            f"train        {v.train}, {v.cars} cars past {v.reader} at {v.train_after_s:g} s"]


def panel(info: SiteInfo) -> Panel:
    """The short panel: labels and ports only, so it fits 80 columns without wrapping."""
    lines = [
        f"API docs     {info.api_url}/docs",
        f"broker       {'mqtts' if info.broker_ca else 'mqtt'}://127.0.0.1:{info.broker_port}"
        f"{' (TLS, site CA)' if info.broker_ca else ''}",
        *_truck_lines(info),
        *(f"{g.device_id:<12} {g.map_name:<15}modbus :{g.modbus_port} "
          f"control :{g.control_port} barrier {g.barrier}" for g in info.gates),
        *_trip_lines(info.trips),
        *_vessel_lines(info.vessel),
        "env file     env.sh, `source` it as printed below: PW_TOKEN, PW_API,",
        "             PORTWATCH_DB and the admin and auditor tokens",
        "commands     below the box, one per line, to paste into any shell",
    ]
    return Panel("\n".join(lines), title=f"portwatch demo site {info.site}: running",
                 subtitle="Ctrl-C stops everything", expand=False)


def print_banner(console: Console, info: SiteInfo, pw: str | None = None) -> None:
    """Print the panel, then the env file's name and every command as a plain line."""
    console.print(panel(info))
    for line in [f"source {shlex.quote(str(info.env_file))}", "# or the same by hand:",
                 *command_lines(info, pw)]:
        # as is: no wrapping at the terminal's width, no markup, colours or emoji codes
        console.print(line, soft_wrap=True, markup=False, highlight=False, emoji=False)

