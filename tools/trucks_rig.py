"""Trucks under emulation beside a rig (tools/rig.py): their GPS streams and JT/T 808
terminals on one background event loop, and what each one sent.

The hardware-in-the-loop scenario of trucks on trips (hil_tests/test_trucks_scenario.py)
drives many trucks at once from a synchronous test: each portwatch tracker agent reads
its own ``NmeaServer`` (tools/gps_emulator.py), each JT/T 808 truck is a
``tools.jtt808_terminal.Terminal`` talking to the gateway; all of them run as tasks of
one asyncio loop in a thread (:class:`TruckLoop`), so the test thread only starts them
and waits on conditions. Every stream keeps the fixes it released and when
(:class:`Sent`), the oracle the test compares the controller's store with.

Fix times are the emulator's (device time); the wall clock only paces their release
(``speed`` times faster than real time), so every rule downstream runs on device time.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from controller.site import Corridor, Site, Zone
from controller.site.geometry import from_local, in_corridor
from tools.gps_emulator import (
    Fix,
    JttFix,
    NmeaServer,
    Script,
    TruckPlan,
    jtt808_fix,
    paced,
    trajectory,
)
from tools.jtt808_terminal import Terminal, TerminalStats
from tools.netem import LinkProxy, Mode
from tools.rig import Rig

T = TypeVar("T")
DECK_BEFORE_S = 60  # a truck stands on the out-gate deck this long before its weighing
DECK_AFTER_S = 30   # and this long after it, then drives (its departure comes before)


@dataclass
class Sent:
    """What one truck's stream released: each fix, and the wall time (s) it went out."""

    fixes: list[Fix] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    done: bool = False
    # wall time (s) the first fix after a coverage gap went out (JT/T 808: the blind-area
    # batch follows it), None without a gap
    link_back_wall: float | None = None


class TruckLoop:
    """One asyncio loop in a daemon thread for every truck's stream and terminal."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="trucks",
                                        daemon=True)
        self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Run ``coro`` on the loop; its future (result or exception) for the caller."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Cancel what still runs, stop the loop and its thread."""
        async def _cancel() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.loop.is_running():
            self.call(_cancel(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()


# ---- trajectories --------------------------------------------------------------------

def weighed_trip(site: Site, corridor_id: str, weighed_ms: int, *, seed: int,
                 script: Script | None = None) -> list[Fix]:
    """The trip of a truck weighed at the out-gate at ``weighed_ms`` (device time): on the
    deck from ``DECK_BEFORE_S`` before to ``DECK_AFTER_S`` after it, then the corridor, the
    arrival and the parking (tools/gps_emulator.trajectory)."""
    plan = TruckPlan(corridor_id, weighed_ms - DECK_BEFORE_S * 1000, seed=seed,
                     weigh_s=DECK_BEFORE_S + DECK_AFTER_S, script=script or Script())
    return trajectory(site, plan)


def every(fixes: Iterable[Fix], seconds: int) -> list[Fix]:
    """One fix per ``seconds`` of fix time (a JT/T 808 terminal's report interval)."""
    out: list[Fix] = []
    for f in fixes:
        if not out or f.ts_ms - out[-1].ts_ms >= seconds * 1000:
            out.append(f)
    return out


def standing(zone: Zone, from_ms: int, to_ms: int, every_s: int, *, seed: int,
             ign: bool = False, noise_m: float = 3.0) -> list[Fix]:
    """Fixes of a truck standing at the middle of ``zone`` (GPS noise ``noise_m``)."""
    rng = random.Random(seed)
    lat = round(sum(p[0] for p in zone.polygon) / len(zone.polygon))
    lon = round(sum(p[1] for p in zone.polygon) / len(zone.polygon))
    out = []
    for ts in range(from_ms - from_ms % 1000, to_ms, every_s * 1000):
        fl, fo = from_local((lat, lon), rng.gauss(0, noise_m), rng.gauss(0, noise_m))
        out.append(Fix(ts, fl, fo, 0, 0, 10, 9, ign, True, False, True, lat, lon, noise_m,
                       0.0, "parked"))
    return out


def first_off_corridor(corridor: Corridor, fixes: Sequence[Fix], *, after_ms: int,
                       margin_m: float = 15.0, min_sats: int = 4,
                       max_hdop_x10: int = 50) -> Fix | None:
    """The first fix after ``after_ms`` that trip_corridor would judge outside the band."""
    for f in fixes:
        if (f.ts_ms >= after_ms and f.sats >= min_sats and f.hdop_x10 <= max_hdop_x10
                and not in_corridor(corridor, f.lat_e6, f.lon_e6, margin_m)):
            return f
    return None


# ---- streams (coroutines for TruckLoop) ----------------------------------------------

async def start_nmea_server() -> NmeaServer:
    """A tracker's serial line on a free TCP port (the agent connects to it)."""
    server = NmeaServer()
    await server.start()
    return server


OnFix = Callable[[Fix], Awaitable[None]]


async def stream_nmea(server: NmeaServer, fixes: Sequence[Fix], speed: float,
                      sent: Sent, on_fix: OnFix | None = None) -> None:
    """Write ``fixes`` to the agent's line, paced ``speed`` x real time; note each one.
    ``on_fix`` is awaited before each fix goes out (e.g. :func:`link_cut`)."""
    async for fix in paced(fixes, speed):
        if on_fix is not None:
            await on_fix(fix)
        await server.send(fix)
        sent.fixes.append(fix)
        sent.wall.append(time.time())
    sent.done = True


async def drive_terminal(host: str, port: int, phone: str, fixes: Sequence[Fix],
                         speed: float, sent: Sent, *, plate: str) -> TerminalStats:
    """A JT/T 808 terminal reporting ``fixes`` paced ``speed`` x real time; a fix with
    ``link_up`` False is out of coverage (kept, sent later as a blind-area batch)."""
    coverage = asyncio.Event()
    coverage.set()

    async def feed() -> AsyncIterator[JttFix]:
        gap = False
        async for fix in paced(fixes, speed):
            if fix.link_up:
                coverage.set()
                if gap and sent.link_back_wall is None:
                    sent.link_back_wall = time.time()
                gap = False
            else:
                coverage.clear()
                gap = True
            sent.fixes.append(fix)
            sent.wall.append(time.time())
            yield jtt808_fix(fix)

    terminal = Terminal(host, port, phone, plate=plate, coverage=coverage,
                        answer_timeout_s=5.0, reconnect_s=0.2)
    stats = await terminal.run(feed())
    sent.done = True
    return stats


def link_cut(proxy: LinkProxy, from_ms: int, to_ms: int,
             marks: list[tuple[str, float]]) -> OnFix:
    """An ``on_fix`` that cuts the agent's link to the broker (``proxy`` between them)
    while the fix time is in [from_ms, to_ms): a coverage gap of the mobile network, the
    agent's outbox keeps what it makes meanwhile. ``marks`` gets (mode, wall time)."""
    async def on_fix(fix: Fix) -> None:
        want: Mode = "cut" if from_ms <= fix.ts_ms < to_ms else "pass"
        if want != proxy.mode:
            # set_mode waits on the proxy's own loop: not on this one
            await asyncio.to_thread(proxy.set_mode, want)
            marks.append((want, time.time()))
    return on_fix


# ---- the API ---------------------------------------------------------------------------

def api_post(rig: Rig, path: str, body: dict[str, Any]) -> Any:
    """POST ``body`` to one API path as the rig's admin; raise on HTTP errors (the
    response's text in the message, to say what the controller refused)."""
    r = httpx.post(rig.api_url + path, json=body, timeout=10,
                   headers={"Authorization": f"Bearer {rig.admin_token}"})
    if r.is_error:
        raise AssertionError(f"POST {path} -> {r.status_code}: {r.text[:300]}")
    return r.json()

