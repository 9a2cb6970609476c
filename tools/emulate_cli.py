"""`portwatch emulate`: emulated field devices driven from the site description.

`portwatch emulate gps` runs one emulated GPS tracker per truck (tools/gps_emulator.py),
each serving NMEA on its own TCP port for a tracker agent to connect to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from controller.site import Site, SiteError, current_site, load_site
from tools import lab_emulate_cli, settings
from tools.gps_emulator import (
    Detour,
    EmulatorError,
    Fix,
    NmeaServer,
    Script,
    Stop,
    TruckPlan,
    Window,
    jtt808_fixes,
    paced,
    trajectory,
)
from tools.jtt808_terminal import TerminalRefused, run_terminal

console = Console()
err = Console(stderr=True)

emulate_app = typer.Typer(help="Emulated field devices driven from the site description.",
                          no_args_is_help=True)

SiteFileOpt = Annotated[Path | None, typer.Option(
    "--site-file", envvar="PORTWATCH_SITE_FILE",
    help="site description [default: the site the controller runs with]")]


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _site(site_file: Path | None) -> Site:
    try:
        return load_site(site_file) if site_file else current_site()
    except SiteError as exc:
        _fail(str(exc))


def _window(at: float | None, minutes: float) -> tuple[Window, ...]:
    return () if at is None else (Window(at, minutes),)


async def _serve(site: Site, plans: list[TruckPlan], host: str, port: int, speed: float,
                 pty: bool, wait_client_s: float, minutes: float | None = None) -> None:
    servers: list[NmeaServer] = []
    tracks = _tracks(site, plans, minutes)  # EmulatorError before anything listens
    try:
        for i, plan in enumerate(plans):
            srv = NmeaServer()
            await srv.start(host, port + i if port else 0, pty=pty)
            servers.append(srv)
            pty_note = f" pty {srv.pty_name}" if srv.pty_name else ""
            # one line per tracker, printed whole: scripts and tests read the port from it
            typer.echo(f"gps truck {i + 1} corridor {plan.corridor_id} seed {plan.seed} "
                       f"tcp {host}:{srv.port}{pty_note} fixes {len(tracks[i])}")
        if wait_client_s > 0:
            deadline = time.monotonic() + wait_client_s
            while (not all(s.clients for s in servers) and time.monotonic() < deadline):
                await asyncio.sleep(0.05)
        await asyncio.gather(*(s.run(t, speed) for s, t in zip(servers, tracks, strict=True)))
        for i, srv in enumerate(servers):
            typer.echo(f"gps truck {i + 1} done: {srv.sent_lines} sentences")
    finally:
        for srv in servers:
            await srv.close()


def _tracks(site: Site, plans: list[TruckPlan], minutes: float | None) -> list[list[Fix]]:
    tracks = [trajectory(site, p) for p in plans]
    if minutes is not None:
        tracks = [[f for f in t if f.ts_ms < p.start_ms + minutes * 60_000]
                  for t, p in zip(tracks, plans, strict=True)]
    return tracks


async def _drive_jtt808(site: Site, plans: list[TruckPlan], gateway: str, phone: int,
                        speed: float, minutes: float | None) -> None:
    """Each truck as a JT/T 808 terminal (tools/jtt808_terminal.py) dialling ``gateway``;
    a coverage gap makes it buffer and send blind-area batches."""
    host, port = settings.split_hostport(gateway, 7808)
    tracks = _tracks(site, plans, minutes)

    async def one(i: int) -> None:
        coverage = asyncio.Event()
        stats = await run_terminal(host, port, str(phone + i),
                                   jtt808_fixes(paced(tracks[i], speed), coverage),
                                   coverage=coverage)
        typer.echo(f"gps truck {i + 1} done: {stats.answered_fixes} fixes answered, "
                   f"{stats.batches} blind-area batches, {stats.unsent} unsent")

    for i, plan in enumerate(plans):
        typer.echo(f"gps truck {i + 1} corridor {plan.corridor_id} seed {plan.seed} "
                   f"jtt808 phone {phone + i} -> {host}:{port} fixes {len(tracks[i])}")
    await asyncio.gather(*(one(i) for i in range(len(plans))))


@emulate_app.command("gps")
def gps(
    corridor: Annotated[list[str] | None, typer.Option(
        help="corridor to drive (repeat for several trucks) [default: each of the site's "
             "corridors in turn]")] = None,
    trucks: Annotated[int, typer.Option(min=1, max=200, help="how many trucks")] = 1,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="TCP port of truck 1 (truck n: port + n - 1); 0: any free "
                               "ones, printed")] = 0,
    speed: Annotated[float, typer.Option(
        min=0.01, help="seconds of fix time per wall second (20: a 30 min trip in 90 s)")] = 1.0,
    seed: Annotated[int, typer.Option(help="seed of truck 1 (truck n: seed + n - 1)")] = 1,
    start_ms: Annotated[int | None, typer.Option(
        help="UTC time of the first fix, epoch ms [default: now]")] = None,
    pty: Annotated[bool, typer.Option(help="also write each tracker's NMEA to a pty")] = False,
    wait_client_s: Annotated[float, typer.Option(
        help="wait this long for a client on every port before the trip starts")] = 0.0,
    minutes: Annotated[float | None, typer.Option(
        min=0.1, help="end each trip after this many minutes of fix time")] = None,
    detour_at_km: Annotated[float | None, typer.Option(
        help="truck 1 leaves its corridor this far along it")] = None,
    detour_m: Annotated[float, typer.Option(help="how far sideways (left if > 0)")] = 400.0,
    detour_length_m: Annotated[float, typer.Option(help="how long it stays off")] = 2000.0,
    stop_at_km: Annotated[float | None, typer.Option(
        help="truck 1 stops this far along its corridor")] = None,
    stop_min: Annotated[float, typer.Option(help="for this many minutes")] = 10.0,
    gap_at_min: Annotated[float | None, typer.Option(
        help="truck 1's tracker loses coverage this many minutes into the trip (NMEA: "
             "unchanged; the fix stream's link_up goes false)")] = None,
    gap_min: Annotated[float, typer.Option(help="for this many minutes")] = 5.0,
    off_at_min: Annotated[float | None, typer.Option(
        help="truck 1's tracker is switched off then: no sentences at all")] = None,
    off_min: Annotated[float, typer.Option(help="for this many minutes")] = 5.0,
    tamper_at_min: Annotated[float | None, typer.Option(
        help="truck 1's tracker case is opened then (PPWIO tamper 1)")] = None,
    power_cut_at_min: Annotated[float | None, typer.Option(
        help="truck 1's tracker loses external power then (PPWIO ext_power 0)")] = None,
    power_cut_min: Annotated[float, typer.Option(help="for this many minutes")] = 5.0,
    jtt808: Annotated[str | None, typer.Option(
        help="speak JT/T 808 to this gateway HOST:PORT instead of serving NMEA (the "
             "terminals must be provisioned: portwatch jtt808 add-terminal)")] = None,
    phone: Annotated[int, typer.Option(
        help="with --jtt808: SIM number of truck 1 (truck n: phone + n - 1)")] = 13800138000,
    site_file: SiteFileOpt = None,
) -> None:
    """Drive emulated trucks from the out-gate weighbridge along the site's corridors,
    serving each tracker's NMEA (GGA, RMC, $PPWIO inputs) on its own TCP port.

    Misbehaviour options apply to truck 1. Two trucks 20 times faster than real time,
    truck 1 detouring 12 km out, its case opened at minute 20:

    Example: portwatch emulate gps --trucks 2 --speed 20 --detour-at-km 12 --tamper-at-min 20

    With --jtt808 HOST:PORT each truck is a JT/T 808 terminal dialling that gateway instead.
    """
    site = _site(site_file)
    names = corridor or list(site.corridors)
    if not names:
        _fail(f"site {site.id} has no corridors to drive")
    start = start_ms if start_ms is not None else int(time.time() * 1000)
    script = Script(
        detours=() if detour_at_km is None else (Detour(detour_at_km, detour_m,
                                                        detour_length_m),),
        stops=() if stop_at_km is None else (Stop(stop_at_km, stop_min),),
        coverage_gaps=_window(gap_at_min, gap_min),
        switched_off=_window(off_at_min, off_min),
        power_cuts=_window(power_cut_at_min, power_cut_min),
        tamper_at_min=tamper_at_min)
    plans = [TruckPlan(corridor_id=names[i % len(names)], start_ms=start, seed=seed + i,
                       script=script if i == 0 else Script()) for i in range(trucks)]
    try:
        with contextlib.suppress(KeyboardInterrupt):
            if jtt808:
                asyncio.run(_drive_jtt808(site, plans, jtt808, phone, speed, minutes))
            else:
                asyncio.run(_serve(site, plans, host, port, speed, pty, wait_client_s,
                                   minutes))
    except (EmulatorError, OSError, ValueError) as exc:
        _fail(str(exc))
    except TerminalRefused as exc:
        _fail(str(exc))


# the lab analyzer's emulator lives in its own module (tools/lab_emulate_cli.py)
emulate_app.command("lab")(lab_emulate_cli.lab)


# the rail yard's AEI reader (tools/rail_emulate_cli.py)
from tools.rail_emulate_cli import rail as _rail  # noqa: E402

emulate_app.command("rail")(_rail)
