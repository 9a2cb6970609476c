"""`portwatch demo`: what it prints can be copied and run, its trucks keep their period, and
its trips are planned so that a short run shows departures, arrivals and one deviation."""

from __future__ import annotations

import asyncio
import itertools
import os
import shlex
import stat
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from controller.drivers import validate_driver
from tools.demo import MIN_TRUCKS_EVERY_S, DemoError, _emulator_args, pacing
from tools.demo_panel import (
    Gate,
    SiteInfo,
    Trips,
    command_lines,
    portwatch_command,
    print_banner,
    write_env_file,
)
from tools.emulators.weighbridge import FastClock, emulator_from_args, parse_args

ENTRY = Path(sys.prefix) / "bin" / "portwatch"
BOX = set("╭╮╰╯│─")


def site(workdir: Path) -> SiteInfo:
    """A site as a demo run makes it, with tokens and paths as long as real ones."""
    return SiteInfo(
        site="dalian-north", api_url="http://127.0.0.1:8000",
        tokens={"operator": "pwt_" + "o" * 43, "admin": "pwt_" + "a" * 43,
                "auditor": "pwt_" + "u" * 43},
        db_path=workdir / "portwatch.db", broker_port=41883,
        broker_login=("demo-watch", "x" * 22), workdir=workdir,
        gates=(Gate("wb-in", "portwatch-sim", 40001, 40002, "local"),
               Gate("wb-out", "float32-le-sim", 40003, 40004, "controller")),
        trucks_every_s=6.0, broker_ca=workdir / "broker" / "tls" / "ca.pem",
        trips=Trips(trackers=(("trk-01", False), ("jt-13904110002", True), ("trk-03", False),
                              ("trk-04", False)),
                    speed=60.0, gateway_port=40005, office_id="demo-feed-mill",
                    office_destination="dest-feed-mill",
                    office_config=workdir / "office-demo-feed-mill.json"))


def test_mosquitto_sub_line_pins_the_site_ca_and_watches_with_its_own_login(
        info: SiteInfo) -> None:
    [line] = [ln for ln in command_lines(info, "portwatch") if ln.startswith("mosquitto_sub")]
    args = shlex.split(line)
    assert args[args.index("--cafile") + 1] == str(info.broker_ca)
    assert args[args.index("-u") + 1] == "demo-watch"  # not the controller's: it would oust it


@pytest.fixture
def info(tmp_path: Path) -> SiteInfo:
    return site(tmp_path / "a checkout with spaces" / "var" / "demo")


def rendered(info: SiteInfo, width: int, pw: str) -> list[str]:
    out = StringIO()
    print_banner(Console(width=width, file=out, color_system=None), info, pw)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("width", [80, 40])
def test_every_command_is_printed_whole_on_one_line_outside_the_box(info: SiteInfo,
                                                                    width: int) -> None:
    pw = str(ENTRY)
    lines = rendered(info, width, pw)
    commands = command_lines(info, pw)
    assert any(c.startswith("export PW_TOKEN=pwt_") for c in commands)
    assert any(c.startswith("curl ") and c.endswith("/api/v1/weighings") for c in commands)
    for command in commands:
        assert command in lines, f"{command!r} was broken or boxed:\n" + "\n".join(lines)
        assert not BOX & set(command)
    box = [line for line in lines if BOX & set(line)]
    assert box and all(len(line) <= width for line in box)
    assert f"source {shlex.quote(str(info.env_file))}" in lines
    assert any("env.sh" in line and "source" in line for line in box)  # the panel says so


def test_the_panel_fits_80_columns_without_wrapping(info: SiteInfo) -> None:
    box = [line for line in rendered(info, 80, "portwatch") if BOX & set(line)]
    inner = [line for line in box if line.startswith("│")]
    # every label line of the panel starts with a label or the indent of a continuation
    assert all(line[2:3] != " " or line[2:15].strip() == "" for line in inner)
    assert any("wb-out" in line and ":40004" in line and "barrier controller" in line
               for line in inner)
    assert any("jt-13904110002" in line for line in inner)
    assert max(len(line) for line in box) < 80  # the panel is as wide as it needs, no more


def test_trip_commands_are_printed_for_trips_alerts_and_the_office(info: SiteInfo) -> None:
    lines = command_lines(info, "portwatch")
    db = shlex.quote(str(info.db_path))
    for wanted in (f"curl -H \"Authorization: Bearer $PW_TOKEN\" {info.api_url}/api/v1/trips",
                   f"curl -H \"Authorization: Bearer $PW_TOKEN\" {info.api_url}/api/v1/alerts",
                   f"portwatch trip list --db {db}", f"portwatch alert list --db {db}",
                   f"portwatch order list --db {db}"):
        assert wanted in lines
    [ack] = [ln for ln in lines if ln.startswith("portwatch alert ack")]
    assert shlex.split(ack)[3:6] == ["ID", "--comment", "calling the driver"]
    [listen] = [ln for ln in lines if ln.startswith("portwatch office listen")]
    args = shlex.split(listen)  # the path with spaces survives the shell
    assert args[args.index("--office") + 1] == "demo-feed-mill"
    assert args[args.index("--config") + 1] == str(info.trips.office_config if info.trips
                                                   else "")


def test_no_trip_commands_without_trips(info: SiteInfo) -> None:
    plain = SiteInfo(**{**info.__dict__, "trips": None})
    lines = command_lines(plain, "portwatch")
    assert not any(ln.startswith(("portwatch trip", "portwatch alert", "portwatch office",
                                  "portwatch order")) for ln in lines)
    assert not any(ln.endswith(("/api/v1/trips", "/api/v1/alerts")) for ln in lines)
    assert any(ln.startswith("portwatch device list") for ln in lines)


def test_env_file_sources_in_bash_and_sets_the_variables(info: SiteInfo) -> None:
    path = write_env_file(info)
    assert path == info.env_file and stat.S_IMODE(path.stat().st_mode) == 0o600
    [source] = [line for line in rendered(info, 80, "portwatch") if line.startswith("source ")]
    done = subprocess.run(  # the line as printed, in a fresh shell
        ["bash", "-c", f'set -eu; {source}; printf "%s\\n" "$PW_TOKEN" "$PW_API" '
         '"$PORTWATCH_DB" "$PW_ADMIN_TOKEN" "$PW_AUDITOR_TOKEN" "$PORTWATCH_SITE"'],
        capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        info.tokens["operator"], info.api_url, str(info.db_path), info.tokens["admin"],
        info.tokens["auditor"], "dalian-north"]


def test_every_printed_line_is_valid_shell(info: SiteInfo) -> None:
    for line in command_lines(info, portwatch_command()):
        done = subprocess.run(["bash", "-n", "-c", line], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, f"{line!r}: {done.stderr}"


def test_portwatch_is_printed_bare_only_when_a_fresh_shell_finds_this_entry_point(
        tmp_path: Path) -> None:
    assert ENTRY.exists(), "the tests run from the project's virtualenv"
    linked, other, empty = tmp_path / "linked", tmp_path / "other", tmp_path / "empty"
    for d in (linked, other, empty):
        d.mkdir()
    (linked / "portwatch").symlink_to(ENTRY)  # what scripts/setup.sh makes in /usr/local/bin
    (other / "portwatch").write_text("#!/bin/sh\necho another portwatch\n")
    (other / "portwatch").chmod(0o755)
    system = "/usr/bin:/bin"
    assert portwatch_command(ENTRY, f"{linked}:{system}") == "portwatch"
    assert portwatch_command(ENTRY, f"{other}:{linked}:{system}") == str(ENTRY)
    assert portwatch_command(ENTRY, f"{empty}:{system}") == str(ENTRY)
    # an activated virtualenv is on this PATH, but not on a fresh shell's
    assert portwatch_command(ENTRY, f"{ENTRY.parent}:{system}") == str(ENTRY)

    for path in (f"{linked}:{system}", f"{empty}:{system}"):
        cmd = portwatch_command(ENTRY, path)
        done = subprocess.run(["bash", "-c", f"{cmd} emulator scenarios"],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": path})
        assert done.returncode == 0, f"{cmd!r} with PATH={path}: {done.stderr}"
        assert "never_stable" in done.stdout


def arrivals(args: tuple[str, ...], count: int = 6) -> list[float]:
    """Play the demo's emulator command line on a fast clock; arrivals from its visit log."""
    parsed = parse_args(list(args))
    parsed.auto, parsed.port, parsed.control_port = count, 0, None  # not 100000 trucks

    async def scenario() -> list[Any]:
        async with emulator_from_args(parsed, clock=FastClock(late_s=0.01)) as wb:
            return await wb.wait_visits(count, timeout=10)

    return [v.arrived for v in asyncio.run(scenario())]


@pytest.mark.parametrize("every_s", [MIN_TRUCKS_EVERY_S, 6.0, 8.5, 20.0])
def test_demo_trucks_arrive_every_n_seconds_as_its_help_says(every_s: float) -> None:
    pace = pacing(every_s)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(arrivals(_emulator_args(pace)))]
    assert gaps == [every_s] * 5
    # and the agents still weigh every truck: their stability window fits inside the
    # time a truck stands still with a few polls to spare, and provisioning accepts it
    t = pace.timing
    assert t.stable_s - pace.agent_stable_s >= 4 * pace.agent_poll_ms / 1000
    assert t.gap_s >= 2 * pace.agent_poll_ms / 1000  # the empty deck is seen between trucks
    validate_driver("weighbridge", {"type": "weighbridge", "map": "portwatch-sim",
                                    "host": "127.0.0.1", "port": 5020,
                                    "stable_s": pace.agent_stable_s,
                                    "poll_ms": pace.agent_poll_ms})


@pytest.mark.parametrize("every_s", [3.9, 0.0, -1.0, float("nan")])
def test_demo_refuses_a_period_too_short_for_a_truck_to_be_weighed(every_s: float) -> None:
    with pytest.raises(DemoError, match="too short"):
        pacing(every_s)
