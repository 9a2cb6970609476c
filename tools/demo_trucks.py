"""The demo's trucks on trips: transfer orders, trackers, the out-gate and the drive.

Each truck has a plate and a tracker: most a portwatch tracker agent under MicroPython
reading the GPS emulator's NMEA over TCP (tools/gps_emulator.py's NmeaServer), every
fourth a JT/T 808 terminal (tools/jtt808_terminal.py) talking to the demo's gateway. A
truck's turn: an operator's transfer order (POST /api/v1/orders), then the out-gate
weighbridge ``wb-out`` weighs it while its tracker reports it standing on the deck in
real time; the controller opens the barrier and the trip departs; the truck then drives
its corridor on a clock ``speed`` times faster than the wall (fix times run ahead
with it) and arrives, which closes the trip. The first truck detours once, so one
``corridor_deviation`` alert is raised, open for about 30 s, and cleared when it is back.

Fix times are device time: after a trip at 60x a tracker's clock is ahead of the wall by
the trip's length (26 min to the feed mill). A truck takes a new order only once the wall
has caught up with its tracker (it drove back meanwhile), so the out-gate always sees it
at the deck at the weighing's time; until then new orders go to new trucks, up to
``MAX_FLEET``. Only trucks on a trip run a tracker agent (two at a time, typically).

Everything runs in one asyncio loop in a thread of its own; the demo's main thread
prints what the controller stores and reads ``messages`` for what happens here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import queue
import random
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller.site import Site
from tools.emulators.weighbridge import ControlClient
from tools.firmware import REPO
from tools.gps_emulator import (
    Detour,
    Fix,
    NmeaServer,
    Script,
    TruckPlan,
    jtt808_fixes,
    paced,
    trajectory,
)
from tools.jtt808_rig import add_terminal
from tools.jtt808_terminal import Terminal
from tools.rig import Rig

TRIP_SPEED = 60.0  # seconds of truck time per wall second: 27 km to the feed mill in ~27 s
DECK_MAX_S = 90  # the longest a truck waits on the out-gate deck for its barrier
ARRIVAL_WAIT_S = 60.0  # after its last fix, for the controller to close the trip
DISPATCH_EVERY_S = 20.0  # a new order this often once the first trucks have left
MAX_FLEET = 100  # trucks (and trackers) the demo may provision; then orders wait
JTT_EVERY = 4  # every 4th truck has a JT/T 808 terminal, the others a tracker agent
JTT_REPORT_MS = 5_000  # a JT/T 808 terminal reports every 5 s (the agent samples itself)
# the first truck takes a road 400 m off its corridor for 30 km: its corridor_deviation
# stays open for about 30 s at 60x, time for an operator to acknowledge it
DETOUR = Detour(at_km=8.0, length_m=30_000.0)
OFFICE_ID = "demo-feed-mill"
OFFICE_DESTINATION = "dest-feed-mill"
TRACKER_DRIVER = {"moving_s": 5, "parked_s": 60, "batch_fixes": 10, "batch_max_s": 60}
# the first trucks, in the order they leave: corridor, whether it detours (the second
# truck has the JT/T 808 terminal: truck_identity)
FIRST_WAVE = (("c-grain-depot", True), ("c-feed-mill", False), ("c-feed-mill", False),
              ("c-grain-depot", False))


class FleetError(RuntimeError):
    """The fleet could not start; the message names the log to read."""


@dataclass
class Truck:
    """One truck of the demo's fleet and its tracker."""

    number: int
    plate: str
    tracker_id: str
    jtt808: bool
    server: NmeaServer | None = None  # the agent's NMEA line (agent trucks)
    phone: str | None = None  # the terminal's SIM number (JT/T 808 trucks)
    busy: bool = False
    last_ts: int = 0  # its tracker's last fix time (device time, ms)
    trips: int = 0

    @property
    def kind(self) -> str:
        return "JT/T 808 terminal" if self.jtt808 else "tracker agent"

    def free_at(self, now_ms: int) -> bool:
        """Not on a trip, and the wall has caught up with its tracker's clock."""
        return not self.busy and self.last_ts < now_ms


@dataclass(frozen=True)
class _Leg:
    """One trip of a truck: its order, the way, what goes wrong, and the load."""

    order_id: str
    corridor_id: str
    script: Script
    n: int  # the demo's trip number (seeds the trajectory)
    tare_kg: int
    net_kg: int


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for ``check()`` (cheap, in memory) without blocking the loop's threads: a
    blocked worker thread would outlive a cancelled trip and hold the demo's exit."""
    async def wrapped() -> bool:
        return check()

    await _until_async(wrapped, timeout, what)


async def _until_async(check: Callable[[], Awaitable[bool]], timeout: float,
                       what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.2)  # a poll interval


def truck_identity(number: int) -> tuple[str, str, str | None]:
    """Plate, tracker id and (JT/T 808 trucks) SIM number of the fleet's truck ``number``."""
    plate = f"辽BT{number:04d}"
    if number % JTT_EVERY == 2:  # the second truck of each four
        phone = f"1390411{number:04d}"
        return plate, f"jt-{phone}", phone
    return plate, f"trk-{number:02d}", None


def pick_truck(fleet: list[Truck], now_ms: int) -> Truck | None:
    """The truck back at the port longest (fewest trips first), or None."""
    free = [t for t in fleet if t.free_at(now_ms)]
    return min(free, key=lambda t: (t.trips, t.last_ts, t.number)) if free else None


def sampled(fixes: list[Fix], every_ms: int = JTT_REPORT_MS) -> list[Fix]:
    """Every fix ``every_ms`` apart, plus each one where the ignition changes and the last
    (what a JT/T 808 terminal set to report every few seconds sends)."""
    out: list[Fix] = []
    for i, fix in enumerate(fixes):
        last = out[-1] if out else None
        if (last is None or fix.ts_ms - last.ts_ms >= every_ms or fix.ign != last.ign
                or i == len(fixes) - 1):
            out.append(fix)
    return out


@dataclass
class Fleet:
    """The demo's trucks; see the module's doc. ``start`` then ``prepare`` then ``run``;
    ``stop`` ends it all; ``messages`` are lines for the demo's output (rich markup)."""

    rig: Rig
    site: Site
    operator_token: str
    wb_out: ControlClient
    gateway_port: int
    speed: float = TRIP_SPEED
    seed: int = 1
    messages: queue.Queue[str] = field(default_factory=queue.Queue)
    fleet: list[Truck] = field(default_factory=list)
    office_config: Path | None = None
    errors: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _deck: asyncio.Lock | None = None
    _trip_no: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- the loop's thread ----------------------------------------------------------------

    def start(self) -> None:
        """Start the loop in its thread."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="demo-trucks",
                                        daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and wait for its result."""
        assert self._loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def say(self, line: str) -> None:
        self.messages.put(f"{time.strftime('%H:%M:%S')} {line}")

    def prepare(self, timeout: float = 60.0) -> None:
        """Provision the destination office and the first trucks' trackers, start their
        agents and wait until they are online."""
        self.office_config = self._add_office()
        try:
            self.call(self._prepare(), timeout)
        except concurrent.futures.TimeoutError as exc:
            raise FleetError(f"the first trucks' trackers did not come up in {timeout:g} s; "
                             f"see the trk-*.log files in {self.rig.workdir}") from exc

    def run(self) -> None:
        """Send the first trucks, then a new order every ``DISPATCH_EVERY_S``."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._spawn, self._dispatch())

    def stop(self) -> None:
        """Cancel every trip, close the NMEA lines and end the loop's thread."""
        if self._loop is None:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.call(self._shutdown(), 20)
            # the trips' fix generators are closed here, not by a loop that has stopped,
            # and the worker threads are joined here, not at the interpreter's exit
            self.call(self._loop.shutdown_asyncgens(), 10)
            self.call(self._loop.shutdown_default_executor(), 15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    # -- set-up ---------------------------------------------------------------------------

    def _add_office(self) -> Path:
        """`portwatch office add` for the feed mill's customs office, then the broker's
        files again so that its login works (as an operator would)."""
        import json

        rig = self.rig
        out = rig.workdir / f"office-{OFFICE_ID}.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "tools.cli", "office", "add", OFFICE_ID,
               "--destination", OFFICE_DESTINATION, "--name", "Ganjingzi inland customs (demo)",
               "--out", str(out), "--broker", f"127.0.0.1:{rig.broker.port}",
               "--db", str(rig.db_path), "--site", rig.site,
               *(["--broker-ca", str(rig.ca)] if rig.ca else ["--no-broker-tls"])]
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise FleetError(f"portwatch office add failed: {done.stderr.strip()}")
        password = json.loads(out.read_text())["password"]
        rig.refresh_broker(probe=(OFFICE_ID, password))
        return out

    async def _prepare(self) -> None:
        self._deck = asyncio.Lock()
        for _ in FIRST_WAVE:
            await self._new_truck()
        await asyncio.gather(*(self._tracker_on(t) for t in self.fleet))

    async def _new_truck(self) -> Truck:
        number = len(self.fleet) + 1
        plate, tracker_id, phone = truck_identity(number)
        truck = Truck(number, plate, tracker_id, phone is not None, phone=phone)
        if phone is not None:
            await asyncio.to_thread(add_terminal, self.rig, phone)
        else:
            truck.server = NmeaServer()
            port = await truck.server.start()
            await asyncio.to_thread(self.rig.add_tracker, tracker_id,
                                    source=f"tcp:127.0.0.1:{port}", health_interval_s=5,
                                    driver=dict(TRACKER_DRIVER))
        self.fleet.append(truck)
        return truck

    async def _tracker_on(self, truck: Truck) -> None:
        """An agent truck's agent running and reading its NMEA line (JT/T 808 terminals
        connect when they have something to send)."""
        if truck.server is None:
            return
        agent = self.rig.agents[truck.tracker_id]
        if not agent.running:
            await asyncio.to_thread(self.rig.start_agent, truck.tracker_id)
        server = truck.server
        await _until(lambda: server.clients > 0 or not agent.running, 30,
                     f"tracker agent {truck.tracker_id} to connect")
        if not agent.running:
            raise FleetError(f"tracker agent {truck.tracker_id} stopped; see {agent.log_path}")

    async def _tracker_off(self, truck: Truck) -> None:
        if truck.server is not None:
            await asyncio.to_thread(self.rig.kill_agent, truck.tracker_id)

    # -- dispatch -------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self) -> None:
        try:
            async with httpx.AsyncClient(
                    base_url=self.rig.api_url, timeout=10,
                    headers={"Authorization": f"Bearer {self.operator_token}"}) as http:
                await self._orders(http)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the demo shows it and stops: nothing new would come
            self.errors.append(f"dispatching trucks failed: {type(exc).__name__}: {exc}")

    async def _orders(self, http: httpx.AsyncClient) -> None:
        """Order the first trucks out in turn (the detour first), then one every
        ``DISPATCH_EVERY_S``. Each trip queues for the deck in the order it was ordered."""
        for first, (corridor, detour) in zip(self.fleet, FIRST_WAVE, strict=True):
            await self._order(http, first, corridor,
                              Script(detours=(DETOUR,) if detour else ()))
        corridors = itertools.cycle(sorted(self.site.corridors))
        waiting_said = False
        while True:
            await asyncio.sleep(DISPATCH_EVERY_S)  # the pace of new orders
            truck = pick_truck(self.fleet, int(time.time() * 1000))
            if truck is None and len(self.fleet) < MAX_FLEET:
                truck = await self._new_truck()
            if truck is None:
                if not waiting_said:
                    self.say(f"all {MAX_FLEET} trucks are out: the next order waits for one "
                             "to come back")
                    waiting_said = True
                continue
            waiting_said = False
            await self._order(http, truck, next(corridors), Script())

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for truck in self.fleet:
            if truck.server is not None:
                await truck.server.close()

    # -- one trip -------------------------------------------------------------------------

    async def _order(self, http: httpx.AsyncClient, truck: Truck, corridor_id: str,
                     script: Script) -> None:
        """An operator's transfer order for ``truck``, then its trip as a task of its own."""
        corridor = self.site.corridors[corridor_id]
        n = next(self._trip_no)
        rng = random.Random(self.seed * 1000 + n)
        # multiples of 100 kg: a whole number of divisions on both indicators (20 and 50 kg)
        tare, net = rng.randrange(14_000, 16_000, 100), rng.randrange(28_000, 34_000, 100)
        now = int(time.time() * 1000)
        truck.busy = True
        try:
            r = await http.post("/api/v1/orders", json={
                "lot": f"LOT-DEMO-{n:04d}", "plate": truck.plate, "tracker_id": truck.tracker_id,
                "destination": corridor.to_zone, "corridor": corridor.id,
                "window_start": now - 60_000, "window_end": now + 3 * 3_600_000,
                "expected_net_kg": net})
            r.raise_for_status()
        except httpx.HTTPError as exc:
            truck.busy = False
            self.say(f"[red]order for {truck.plate} refused:[/] {exc}")
            return
        order_id = str(r.json()["order_id"])
        truck.trips += 1
        self.say(f"order {order_id} {truck.plate} {net} kg -> {corridor.to_zone} "
                 f"({truck.kind} {truck.tracker_id})")
        self._spawn(self._trip(http, truck, _Leg(order_id, corridor_id, script, n, tare, net)))

    async def _trip(self, http: httpx.AsyncClient, truck: Truck, leg: _Leg) -> None:
        try:
            try:
                await self._leave(http, truck, leg)
            except Exception:
                with contextlib.suppress(httpx.HTTPError):  # an order left open would stay
                    await http.post(f"/api/v1/orders/{leg.order_id}/cancel", json={
                        "reason": "the demo's truck could not leave; see its output"})
                raise
            await self._wait_order(http, leg.order_id, ("arrived", "cancelled"),
                                   ARRIVAL_WAIT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one truck's trouble: said, and the demo goes on
            self.say(f"[red]truck {truck.plate}:[/] {type(exc).__name__}: {exc}")
        finally:
            truck.busy = False
            await self._tracker_off(truck)  # switched off until its next trip

    async def _leave(self, http: httpx.AsyncClient, truck: Truck, leg: _Leg) -> None:
        """Weigh the truck out at wb-out, wait for its trip to depart, and drive it."""
        departed = asyncio.Event()
        assert self._deck is not None
        async with self._deck:  # one truck at a time on the out-gate deck, in order
            await self._tracker_on(truck)
            feed = asyncio.ensure_future(self._feed(truck, leg, departed))
            self._tasks.add(feed)  # cancelled and awaited at shutdown like the trips
            feed.add_done_callback(self._tasks.discard)
            try:
                visits = len(await asyncio.to_thread(self.wb_out.log))
                await asyncio.to_thread(self.wb_out.truck, truck.plate, leg.tare_kg,
                                        leg.net_kg)
                status = await self._wait_order(http, leg.order_id, ("departed", "arrived"),
                                                DECK_MAX_S)
                if status is None:
                    raise RuntimeError(f"order {leg.order_id} did not depart within "
                                       f"{DECK_MAX_S} s; cancelled (see the gate's "
                                       "alerts and commands)")
                departed.set()
                # the deck is free once the emulated truck has driven off it
                async def off_deck() -> bool:
                    return len(await asyncio.to_thread(self.wb_out.log)) > visits

                await _until_async(off_deck, 60, f"{truck.plate} to leave the wb-out deck")
            except BaseException:
                feed.cancel()
                raise
        await feed

    async def _wait_order(self, http: httpx.AsyncClient, order_id: str,
                          statuses: tuple[str, ...], timeout: float) -> str | None:
        """The order's status once it is one of ``statuses``; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = await http.get(f"/api/v1/orders/{order_id}")
            if r.status_code == 200 and r.json()["status"] in statuses:
                return str(r.json()["status"])
            await asyncio.sleep(0.5)  # a poll interval of the API
        return None

    async def _track(self, truck: Truck, leg: _Leg,
                     departed: asyncio.Event) -> AsyncIterator[Fix]:
        """The tracker's fixes: on the deck in real time until the trip departs, then the
        drive on the accelerated clock."""
        start = max(int(time.time() * 1000), truck.last_ts + 1000)
        deck = [f for f in trajectory(self.site, TruckPlan(
            leg.corridor_id, start, seed=leg.n, weigh_s=DECK_MAX_S, multipath_p=0.0))
            if f.phase == "weighing"]
        last = deck[0]
        async for fix in paced(deck, 1.0):
            last = fix
            truck.last_ts = fix.ts_ms
            yield fix
            if departed.is_set():
                break
        if not departed.is_set():
            return
        drive = trajectory(self.site, TruckPlan(leg.corridor_id, last.ts_ms + 1000,
                                                seed=leg.n, weigh_s=1, script=leg.script))
        async for fix in paced(sampled(drive) if truck.jtt808 else drive, self.speed):
            truck.last_ts = fix.ts_ms
            yield fix

    async def _feed(self, truck: Truck, leg: _Leg, departed: asyncio.Event) -> None:
        fixes = self._track(truck, leg, departed)
        if truck.server is not None:
            async for fix in fixes:
                await truck.server.send(fix)
            return
        assert truck.phone is not None
        coverage = asyncio.Event()
        coverage.set()
        terminal = Terminal("127.0.0.1", self.gateway_port, truck.phone, plate=truck.plate,
                            coverage=coverage)
        stats = await terminal.run(jtt808_fixes(fixes, coverage))
        if stats.unsent:
            raise RuntimeError(f"terminal {truck.phone}: {stats.unsent} fixes unanswered by "
                               "the gateway; see jtt808.log")
