"""Emulated GPS trackers on trucks: trajectories along a site's corridors, as fixes and NMEA.

Three layers, I/O only at the edge:

- ``trajectory(site, plan)``: the pure core. A truck stands on the out-gate weighbridge
  deck (the corridor's first point), then drives the corridor to its destination and parks
  with the ignition off. One fix per second of fix time; the same plan and seed give the
  same fixes. Speeds: ``port_kmh`` while inside the port's zones, a road speed per segment
  (wide segments faster) varied by the seed, slowed for bends and for every stop, with
  bounded acceleration and braking. Each fix carries its true position and the noise added
  to it (Gaussian ``noise_m`` per axis, now and then a 20-30 m multipath jump), so tests can
  bound what a clean run may show.
- Scripted misbehaviour (``Script``): a detour (the truck leaves the corridor sideways for a
  distance and comes back), unplanned stops, coverage gaps (``link_up`` False on the fixes:
  the receiver still has fixes but the tracker cannot send; an NMEA agent sees nothing of
  it, a JT/T 808 terminal buffers), the tracker switched off (no fixes at all), the case
  opened at a time, external power cut for a while.
- Outputs: ``nmea_lines`` (GGA + RMC per fix, ``$PPWIO,<ign>,<ext_power>,<tamper>`` on a
  change and every 10 fixes, as edge/drivers/tracker.py reads them), ``paced`` (an async
  iterator releasing fixes on an accelerated clock: ``speed=20`` is 20 s of fix time per
  wall second), ``jtt808_fixes`` (the same as tools/jtt808_terminal.py's fixes, driving
  its ``coverage`` event from ``link_up``), ``NmeaServer`` (one TCP port per tracker; the
  agent connects as a client) and ``PtyWriter`` (a pseudo-terminal).

Every fix carries its own UTC time (``ts_ms``): downstream rules work on device time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from controller.site import Corridor, Site
from controller.site.geometry import distance_m, from_local, to_local, zones_at
from protocols import jtt808
from protocols.nmea import KMH_PER_KNOT, sentence

PORT_ZONE_KINDS = frozenset({"port_area", "gate", "weighbridge", "berth", "silo",
                             "bonded_yard", "rail_yard"})
ACCEL_MS2 = 0.8  # a loaded 40 t truck
BRAKE_MS2 = 1.2  # planned braking; the speed limits are built from this
MAX_BRAKE_MS2 = 3.0  # when a limit drops faster than planned braking follows
BEND_KMH = 30.0  # speed through a bend sharper than BEND_DEG
BEND_DEG = 25.0
PPWIO_EVERY = 10


@dataclass(frozen=True)
class Detour:
    """Leave the corridor ``at_km`` along it: ``offset_m`` to the side (positive: left)
    reached over ``ramp_m``, held for ``length_m``, then back."""

    at_km: float
    offset_m: float = 400.0
    length_m: float = 2000.0
    ramp_m: float = 300.0


@dataclass(frozen=True)
class Stop:
    """An unplanned stop ``at_km`` along the corridor for ``minutes``."""

    at_km: float
    minutes: float
    ign_off: bool = False


@dataclass(frozen=True)
class Window:
    """From ``at_min`` minutes of fix time after the start, for ``minutes``."""

    at_min: float
    minutes: float

    def holds(self, t_s: float) -> bool:
        return self.at_min * 60 <= t_s < (self.at_min + self.minutes) * 60


@dataclass(frozen=True)
class Script:
    """What goes wrong on one truck's trip (nothing, by default)."""

    detours: tuple[Detour, ...] = ()
    stops: tuple[Stop, ...] = ()
    coverage_gaps: tuple[Window, ...] = ()
    switched_off: tuple[Window, ...] = ()
    power_cuts: tuple[Window, ...] = ()
    tamper_at_min: float | None = None  # the case is opened then and stays open


@dataclass(frozen=True)
class TruckPlan:
    """One truck's trip: the corridor it drives, when, how, and what goes wrong."""

    corridor_id: str
    start_ms: int  # fix time of the first fix (rounded down to a whole second)
    seed: int = 1
    weigh_s: int = 60  # standing on the out-gate deck before moving
    port_kmh: float = 10.0
    road_kmh: float = 65.0  # on wide (>= 100 m) segments; narrower ones get 70 % of it
    arrive_idle_s: int = 30  # engine running at the destination before it is switched off
    park_s: int = 120  # parked with the ignition off at the end
    noise_m: float = 3.0  # Gaussian sigma per axis
    multipath_p: float = 0.01  # chance per fix of a 20-30 m jump
    script: Script = field(default_factory=Script)


@dataclass(frozen=True)
class Fix:
    """One second of a tracker's life as its receiver reports it.

    ``row()`` is the positions-event fix ``[ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg,
    sats, hdop_x10]``. ``link_up`` False: a coverage gap (JT/T 808 terminals buffer).
    ``true_lat_e6``/``true_lon_e6`` are where the truck really is; ``noise_m`` how far the
    reported position is from it; ``along_m`` its distance along the corridor; ``phase``
    one of weighing, driving, stopped, detour, arrived, parked.
    """

    ts_ms: int
    lat_e6: int
    lon_e6: int
    speed_dkmh: int
    course_deg: int
    sats: int
    hdop_x10: int
    ign: bool
    ext_power: bool
    tamper: bool
    link_up: bool
    true_lat_e6: int
    true_lon_e6: int
    noise_m: float
    along_m: float
    phase: str

    def row(self) -> list[int]:
        """The fix as a positions-event row."""
        return [self.ts_ms, self.lat_e6, self.lon_e6, self.speed_dkmh, self.course_deg,
                self.sats, self.hdop_x10]


class EmulatorError(ValueError):
    """A plan that cannot be driven on this site (unknown corridor, stop past the end...)."""


@dataclass(frozen=True)
class _Sample:
    t: int  # seconds since the start
    s: float  # metres along the corridor
    v: float  # m/s
    phase: str
    ign: bool


class _Route:
    """A corridor as arc length: where a distance along it is, and the heading there."""

    def __init__(self, corridor: Corridor) -> None:
        self.points = corridor.points
        self.cum = [0.0]
        for a, b in zip(self.points, self.points[1:], strict=False):
            self.cum.append(self.cum[-1] + distance_m(a, b))
        self.length = self.cum[-1]

    def segment(self, s: float) -> int:
        for i in range(len(self.points) - 1):
            if s <= self.cum[i + 1]:
                return i
        return len(self.points) - 2

    def at(self, s: float) -> tuple[int, int]:
        i = self.segment(s)
        a, b = self.points[i], self.points[i + 1]
        seg = self.cum[i + 1] - self.cum[i]
        f = 0.0 if seg == 0 else max(0.0, min(1.0, (s - self.cum[i]) / seg))
        # linear in degrees: over a segment of a few km the error is centimetres
        return (round(a[0] + (b[0] - a[0]) * f), round(a[1] + (b[1] - a[1]) * f))

    def heading(self, i: int) -> tuple[float, float]:
        """Unit (east, north) vector of segment ``i``."""
        e, n = to_local(self.points[i], self.points[i + 1])
        norm = math.hypot(e, n) or 1.0
        return e / norm, n / norm

    def bend_deg(self, vertex: int) -> float:
        """How sharply the route turns at an inner vertex."""
        h1, h2 = self.heading(vertex - 1), self.heading(vertex)
        dot = max(-1.0, min(1.0, h1[0] * h2[0] + h1[1] * h2[1]))
        return math.degrees(math.acos(dot))


def _detour_offset(s: float, detours: tuple[Detour, ...]) -> float:
    """Sideways offset in metres at ``s`` (a trapezoid per detour)."""
    for d in detours:
        start = d.at_km * 1000
        ramp = max(d.ramp_m, 1.0)
        x = s - start
        total = 2 * ramp + d.length_m
        if 0 <= x <= total:
            return d.offset_m * min(1.0, x / ramp, (total - x) / ramp)
    return 0.0


def _kinematics(site: Site, route: _Route, plan: TruckPlan, corridor: Corridor) -> list[_Sample]:
    """Arc length and speed at each second of fix time, with its phase and ignition."""
    rng = random.Random(plan.seed * 7919 + 1)
    seg_kmh = []
    for w in corridor.widths_m:
        base = plan.road_kmh if w >= 100 else plan.road_kmh * 0.7
        seg_kmh.append(base * rng.uniform(0.9, 1.1))
    bends = [(route.cum[i], BEND_KMH / 3.6) for i in range(1, len(route.points) - 1)
             if route.bend_deg(i) > BEND_DEG]
    stops = sorted(plan.script.stops, key=lambda st: st.at_km)
    for st in stops:
        if not 0 < st.at_km * 1000 < route.length:
            raise EmulatorError(f"a stop at {st.at_km} km is not on corridor {corridor.id} "
                                f"({route.length / 1000:.1f} km long)")
    for d in plan.script.detours:
        end = d.at_km * 1000 + 2 * d.ramp_m + d.length_m
        if not (d.at_km > 0 and end < route.length) or d.length_m < 0 or d.ramp_m <= 0:
            raise EmulatorError(f"a detour from {d.at_km} km over {end / 1000 - d.at_km:.1f} "
                                f"km does not fit on corridor {corridor.id} "
                                f"({route.length / 1000:.1f} km long)")
    pending = [(st.at_km * 1000, st.minutes * 60, st.ign_off) for st in stops]
    pending.append((route.length, float(plan.arrive_idle_s), False))

    def in_port(s: float) -> bool:
        return any(z.kind in PORT_ZONE_KINDS for z in zones_at(site, *route.at(s)))

    out: list[_Sample] = [_Sample(t, 0.0, 0.0, "weighing", True) for t in range(plan.weigh_s)]
    t, s, v = plan.weigh_s, 0.0, 0.0
    port_ms = plan.port_kmh / 3.6
    while pending:
        stop_at, stop_s, stop_ign_off = pending[0]
        limit = port_ms if in_port(s) else seg_kmh[route.segment(s)] / 3.6
        for at, vb in bends:
            if at > s:
                limit = min(limit, math.sqrt(vb * vb + 2 * BRAKE_MS2 * (at - s)))
        remaining = stop_at - s
        # brake for where the truck will be after this second, so it arrives slowly
        limit = min(limit, max(1.0, math.sqrt(2 * BRAKE_MS2 * max(remaining - v, 0.0))))
        v_new = min(v + ACCEL_MS2, limit) if v <= limit else max(limit, v - MAX_BRAKE_MS2)
        step = (v + v_new) / 2
        if step >= remaining:  # the stop is reached within this second
            out.append(_Sample(t, stop_at, 0.0, "driving", True))
            t += 1
            final = len(pending) == 1
            for k in range(int(stop_s)):
                out.append(_Sample(t + k, stop_at, 0.0, "arrived" if final else "stopped",
                                   not (stop_ign_off and 5 <= k < stop_s - 5)))
            t += int(stop_s)
            s, v = stop_at, 0.0
            pending.pop(0)
            continue
        s += step
        v = v_new
        out.append(_Sample(t, s, v, "driving", True))
        t += 1
    out.extend(_Sample(t + k, route.length, 0.0, "parked", False) for k in range(plan.park_s))
    return out


def trajectory(site: Site, plan: TruckPlan) -> list[Fix]:
    """Every fix the tracker makes on ``plan``'s trip (switched-off seconds have none)."""
    corridor = site.corridors.get(plan.corridor_id)
    if corridor is None:
        raise EmulatorError(f"corridor {plan.corridor_id!r} is not on site {site.id}: "
                            f"pick one of {', '.join(site.corridors) or '(none)'}")
    route = _Route(corridor)
    samples = _kinematics(site, route, plan, corridor)
    rng = random.Random(plan.seed)
    sc = plan.script
    start = plan.start_ms - plan.start_ms % 1000
    fixes: list[Fix] = []
    sats = 10
    course = round(math.degrees(math.atan2(*route.heading(0)))) % 360
    prev_true: tuple[int, int] | None = None
    for smp in samples:
        base = route.at(smp.s)
        offset = _detour_offset(smp.s, sc.detours)
        if offset:
            he, hn = route.heading(route.segment(smp.s))
            true = from_local(base, -hn * offset, he * offset)  # left of the heading
        else:
            true = base
        if prev_true is not None and smp.v > 0.3:
            de, dn = to_local(prev_true, true)
            if de or dn:
                course = round(math.degrees(math.atan2(de, dn))) % 360
        prev_true = true
        # the random draws happen every second, sent or not, so scripts do not shift noise
        ne, nn = rng.gauss(0, plan.noise_m), rng.gauss(0, plan.noise_m)
        jump = rng.random() < plan.multipath_p
        jump_m, jump_dir = rng.uniform(20, 30), rng.uniform(0, 2 * math.pi)
        sats = max(5, min(14, sats + rng.choice((-1, 0, 0, 0, 0, 1))))
        hdop_x10 = 8 + (14 - sats) + rng.randint(0, 2)
        if jump:
            ne += jump_m * math.sin(jump_dir)
            nn += jump_m * math.cos(jump_dir)
            hdop_x10 += 15
        if any(w.holds(smp.t) for w in sc.switched_off):
            continue
        lat, lon = from_local(true, ne, nn)
        phase = "detour" if offset and smp.phase == "driving" else smp.phase
        fixes.append(Fix(
            ts_ms=start + smp.t * 1000, lat_e6=lat, lon_e6=lon,
            speed_dkmh=round(smp.v * 36), course_deg=course, sats=sats, hdop_x10=hdop_x10,
            ign=smp.ign,
            ext_power=not any(w.holds(smp.t) for w in sc.power_cuts),
            tamper=sc.tamper_at_min is not None and smp.t >= sc.tamper_at_min * 60,
            link_up=not any(w.holds(smp.t) for w in sc.coverage_gaps),
            true_lat_e6=true[0], true_lon_e6=true[1],
            noise_m=distance_m(true, (lat, lon)), along_m=smp.s, phase=phase))
    return fixes


# ---- NMEA ----

def _coord(e6: int, deg_digits: int, pos: str, neg: str) -> tuple[str, str]:
    """Micro-degrees as ``[d]ddmm.mmmmm``: exact (a micro-degree is 0.00006 minute)."""
    a = abs(e6)
    minutes_e5 = (a % 1_000_000) * 6
    text = (f"{a // 1_000_000:0{deg_digits}d}{minutes_e5 // 100_000:02d}."
            f"{minutes_e5 % 100_000:05d}")
    return text, (neg if e6 < 0 else pos)


def gga(fix: Fix, talker: str = "GN") -> str:
    """The fix as a GGA sentence (fix quality 1, altitude 12.0 m, geoid 8.1 m)."""
    when = datetime.fromtimestamp(fix.ts_ms / 1000, UTC)
    lat, ns = _coord(fix.lat_e6, 2, "N", "S")
    lon, ew = _coord(fix.lon_e6, 3, "E", "W")
    hms = f"{when:%H%M%S}.{fix.ts_ms % 1000 // 10:02d}"
    return sentence(f"{talker}GGA,{hms},{lat},{ns},{lon},{ew},1,{fix.sats:02d},"
                    f"{fix.hdop_x10 / 10:.1f},12.0,M,8.1,M,,")


def rmc(fix: Fix, talker: str = "GN") -> str:
    """The fix as an RMC sentence (status A, mode A), speed in knots."""
    when = datetime.fromtimestamp(fix.ts_ms / 1000, UTC)
    lat, ns = _coord(fix.lat_e6, 2, "N", "S")
    lon, ew = _coord(fix.lon_e6, 3, "E", "W")
    knots = fix.speed_dkmh / 10 / KMH_PER_KNOT
    hms = f"{when:%H%M%S}.{fix.ts_ms % 1000 // 10:02d}"
    return sentence(f"{talker}RMC,{hms},A,{lat},{ns},{lon},{ew},{knots:.3f},"
                    f"{fix.course_deg:.1f},{when:%d%m%y},,,A")


def ppwio(ign: bool, ext_power: bool, tamper: bool) -> str:
    """The emulator's stand-in for the tracker's three GPIO inputs (1 = on/present/open)."""
    return sentence(f"PPWIO,{ign:d},{ext_power:d},{tamper:d}")


class NmeaEncoder:
    """Sentences for each fix in turn: PPWIO on a change, after a silence and every 10 fixes
    (so an agent that connects late learns the inputs), then GGA and RMC."""

    def __init__(self, talker: str = "GN") -> None:
        self.talker = talker
        self._io: tuple[bool, bool, bool] | None = None
        self._n = 0
        self._last_ts: int | None = None

    def lines(self, fix: Fix) -> list[str]:
        io = (fix.ign, fix.ext_power, fix.tamper)
        out: list[str] = []
        gap = self._last_ts is not None and fix.ts_ms - self._last_ts > 1000
        if io != self._io or gap or self._n % PPWIO_EVERY == 0:
            out.append(ppwio(*io))
            self._io = io
        self._n += 1
        self._last_ts = fix.ts_ms
        out.append(gga(fix, self.talker))
        out.append(rmc(fix, self.talker))
        return out


def nmea_lines(fixes: Iterable[Fix], talker: str = "GN") -> Iterator[str]:
    """The NMEA stream of a fix sequence, one sentence per item, without CR LF."""
    enc = NmeaEncoder(talker)
    for fix in fixes:
        yield from enc.lines(fix)


# ---- pacing and serving ----

async def paced(fixes: Iterable[Fix], speed: float = 1.0,
                clock: Callable[[], float] = time.monotonic) -> AsyncIterator[Fix]:
    """Release each fix when its fix time comes on a clock running ``speed`` times faster
    than the wall: fix time elapsed / speed = wall time elapsed since the first fix."""
    if speed <= 0:
        raise EmulatorError(f"speed {speed}: the clock runs forward (e.g. 1, or 20)")
    wall0: float | None = None
    ts0 = 0
    for fix in fixes:
        if wall0 is None:
            wall0, ts0 = clock(), fix.ts_ms
        due = wall0 + (fix.ts_ms - ts0) / 1000 / speed
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        yield fix


class NmeaServer:
    """One tracker's serial line on a TCP port: every connected client gets the sentences
    from the moment it connects (nobody listening: they are gone, like a UART's)."""

    def __init__(self, talker: str = "GN") -> None:
        self.encoder = NmeaEncoder(talker)
        self.port = 0
        self.sent_lines = 0
        self.dropped_clients = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._pty: PtyWriter | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    pty: bool = False) -> int:
        """Listen (port 0: any free one); return the port. ``pty``: also open a pty."""
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        if pty:
            self._pty = PtyWriter()
        return self.port

    @property
    def clients(self) -> int:
        """How many clients are connected now."""
        return len(self._writers)

    @property
    def pty_name(self) -> str | None:
        """The pty's path when one was asked for (a reader opens it as the UART)."""
        return self._pty.name if self._pty else None

    @property
    def pty_dropped_bytes(self) -> int:
        """Bytes the pty could not take (nobody reading): dropped, never blocking."""
        return self._pty.dropped_bytes if self._pty else 0

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    async def send(self, fix: Fix) -> None:
        """Write one fix's sentences to every client (and the pty)."""
        data = "".join(line + "\r\n" for line in self.encoder.lines(fix)).encode("ascii")
        self.sent_lines += data.count(b"\n")
        for w in list(self._writers):
            try:
                w.write(data)
                await asyncio.wait_for(w.drain(), 5)
            except (OSError, TimeoutError):  # a client gone or stuck: it reconnects anew
                self._writers.discard(w)
                self.dropped_clients += 1
                w.close()
        if self._pty:
            self._pty.write(data)

    async def run(self, fixes: Iterable[Fix], speed: float = 1.0) -> None:
        """Serve the fixes paced at ``speed``, then return (the port stays open)."""
        async for fix in paced(fixes, speed):
            await self.send(fix)

    async def close(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        if self._pty:
            self._pty.close()


# ---- JT/T 808 ----

JttFix = tuple[int, int, int, int, int, int, int]


def jtt808_fix(fix: Fix) -> JttFix:
    """The fix as tools/jtt808_terminal.py reports it: ``(ts_ms, lat_e6, lon_e6, speed_dkmh,
    course_deg, alarm_bits, status_bits)``; power cut and case opened as the alarm bits the
    gateway reads (main power cut, illegal displacement), ignition as ACC."""
    alarm = ((0 if fix.ext_power else jtt808.ALARM_POWER_CUT)
             | (jtt808.ALARM_ILLEGAL_DISPLACEMENT if fix.tamper else 0))
    status = jtt808.STATUS_FIXED | (jtt808.STATUS_ACC if fix.ign else 0)
    return (fix.ts_ms, fix.lat_e6, fix.lon_e6, fix.speed_dkmh, fix.course_deg, alarm, status)


async def jtt808_fixes(fixes: AsyncIterator[Fix] | Iterable[Fix],
                       coverage: asyncio.Event) -> AsyncIterator[JttFix]:
    """Feed for ``run_terminal(..., fixes, coverage=coverage)``: each fix's ``link_up``
    sets or clears ``coverage`` just before the fix is handed over, so the terminal keeps
    the fixes of a coverage gap and sends them as a blind-area batch when it is over."""
    async def _each() -> AsyncIterator[Fix]:
        if isinstance(fixes, AsyncIterator):
            async for f in fixes:
                yield f
        else:
            for f in fixes:
                yield f

    async for fix in _each():
        if fix.link_up:
            coverage.set()
        else:
            coverage.clear()
        yield jtt808_fix(fix)


class PtyWriter:
    """A pseudo-terminal standing in for the receiver's UART: a reader opens ``name``.
    Nobody reading: bytes that do not fit are dropped and counted, the emulator never
    blocks."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.name = os.ttyname(self.slave)
        self.dropped_bytes = 0

    def write(self, data: bytes) -> None:
        try:
            n = os.write(self.master, data)
        except BlockingIOError:
            n = 0
        self.dropped_bytes += len(data) - n

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
