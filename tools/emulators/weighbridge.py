"""A truck weighbridge's weighing indicator on a real pymodbus Modbus TCP server, scripted.

The indicator's registers follow a declarative register map (``protocols/registermaps``,
encoded with ``protocols.registermap``), so the same emulator plays any indicator model
a map describes. Trucks are queued and cross the deck one at a time::

    empty -> ramp (entry sensor, motion, weight rising) -> settle (on deck, motion)
          -> stable (gross = tare + net exactly, for stable_s) -> leave (exit sensor,
          weight falling) -> empty (zero, stable) -> next truck after gap_s

and every completed crossing is logged as a ``Visit`` with the exact plate and weights,
so a test can compare what the controller stored with what the weighbridge produced.
A map with a ``barrier`` coil also serves the exit barrier's relay (function 05 writes it,
01 reads it back); each visit records when the barrier was first open while that truck
was on the deck (``barrier_opened_ts``, null if never) and every write that reached the
coil meanwhile (``barrier_writes``). Trucks still leave on their timeline: the log
shows whether the barrier let them, it does not hold them back.
Faults are injected on command: Modbus exception replies, missing replies (timeouts),
weight noise, overload / setup / remote-calibration bits; per-truck scenarios add wheels
off the deck while stable, a truck that leaves without ever being stable, and a reading
that steps down while stable (a resistor switched into the load cell cable).

Run it::

    python -m tools.emulators.weighbridge --port 5020 --control-port 5021 --map portwatch-sim

It prints ``weighbridge emulator ready modbus=HOST:P control=HOST:C map=M unit=U`` once
serving (port 0 picks a free port and the line tells which). The control port takes one
JSON object per line and answers one per line; send ``{"cmd": "help"}`` for the list, or
drive it with ``portwatch emulator`` (tools/emulator_cli.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from protocols import registermap
from tools.emulators import ControlError, EmulatorError
from tools.procs import stop_process, wait_until

__all__ = [
    "FAULT_DOCS",
    "FAULT_KINDS",
    "MAPS_DIR",
    "SCENARIOS",
    "SCENARIO_DOCS",
    "Clock",
    "ControlClient",
    "EmulatorProcess",
    "FastClock",
    "Timing",
    "Truck",
    "Visit",
    "WeighbridgeEmulator",
    "control",
    "emulator_from_args",
    "load_map",
    "main",
    "map_table",
    "parse_args",
    "parse_ready",
    "random_truck",
    "spawn",
]

T = TypeVar("T")
RegisterMap = dict[str, Any]

REPO_ROOT = Path(__file__).resolve().parents[2]
MAPS_DIR = REPO_ROOT / "protocols" / "registermaps"
SCENARIO_DOCS = {
    "normal": "drives on, settles, stands stable at gross = tare + net exactly, drives off",
    "wheels_off_left": "stands stable with a wheel group on the left grating: the indicator "
                       "shows 10 % less and deck_left_blocked is set",
    "wheels_off_right": "the same on the right grating (deck_right_blocked)",
    "never_stable": "keeps moving the whole time it is on the deck, then leaves unweighed",
    "resistor_step": "a quarter into its stable time the reading drops by 2 % (at least "
                     "10 e) at once and stays stable: a resistor switched into the load cell "
                     "cable by remote control",
}
SCENARIOS = tuple(SCENARIO_DOCS)
FAULT_DOCS = {
    "exception": "the next COUNT reads get Modbus exception CODE (default 6, device busy)",
    "timeout": "the next COUNT reads (or every request, barrier writes too, for SECONDS) "
               "get no reply at all",
    "noise": "weight jitter of E divisions while the deck is not stable (0: none)",
    "overload": "the overload status bit, on (for SECONDS, or until cleared) or off",
    "setup": "the setup-mode status bit: the indicator is being configured",
    "remote_cal": "the remote-calibration status bit: someone is calibrating it remotely",
}
FLAG_FAULTS = ("overload", "setup", "remote_cal")
FAULT_KINDS = tuple(FAULT_DOCS)
PLATE_PREFIX = "辽B"  # Dalian
PLATE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"  # Chinese plates skip I and O
WHEELS_OFF_SHARE = 0.1  # share of the gross a wheel group on the side grating takes off
RESISTOR_SHARE = 0.02  # share of the gross a resistor spliced into the cable hides
RESISTOR_AT = 0.25  # how far into the stable time it is switched in
DEFAULT_DIVISION_KG = 20
DEFAULT_CAPACITY_KG = 60_000
READY_PREFIX = "weighbridge emulator ready"


# ---------------------------------------------------------------- time


class Clock:
    """The time the emulator reads and sleeps on: real time.

    Tests of the truck schedule pass a fast clock whose ``sleep`` returns at once
    after moving its time forward, so hours of arrivals take milliseconds.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (scheduling, faults, phases)."""
        return time.monotonic()

    def time(self) -> float:
        """Unix time (the arrival times in the visit log)."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        await asyncio.sleep(seconds)


class FastClock(Clock):
    """Virtual time for playing a truck schedule at once (tests of arrival times).

    ``sleep`` moves the clock forward and returns at the next turn of the event loop,
    plus ``late_s`` as if every wake-up were that late. Only the truck schedule sleeps
    on the emulator's clock, so hours of arrivals take milliseconds and the visit log
    holds their exact times.
    """

    def __init__(self, start: float = 1_000.0, late_s: float = 0.0) -> None:
        self.now, self.late_s = start, late_s

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds) + self.late_s
        await asyncio.sleep(0)


# ---------------------------------------------------------------- trucks and their timeline


@dataclass(frozen=True)
class Timing:
    """How long each phase of a truck's crossing lasts, in seconds."""

    ramp_s: float = 2.0  # driving onto the deck: entry sensor blocked, weight rising
    settle_s: float = 2.0  # on the deck, still rocking: motion
    stable_s: float = 5.0  # stable at the exact weight
    leave_s: float = 2.0  # driving off: exit sensor blocked, weight falling
    gap_s: float = 1.0  # least time the deck stays empty between trucks

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
                raise EmulatorError(f"timing {f.name} must be a number of seconds >= 0")

    @property
    def crossing_s(self) -> float:
        """Time from the truck's front wheels on the ramp to its rear wheels off."""
        return self.ramp_s + self.settle_s + self.stable_s + self.leave_s


@dataclass(frozen=True)
class Truck:
    """One truck to weigh: what the plate reader reads and what it really weighs."""

    plate: str
    tare_kg: int
    net_kg: int
    scenario: str = "normal"  # one of SCENARIOS
    gap_s: float | None = None  # empty-deck time before it arrives (None: Timing.gap_s)

    @property
    def gross_kg(self) -> int:
        return self.tare_kg + self.net_kg


@dataclass(frozen=True)
class Visit:
    """A completed crossing: the truth to compare the controller's record with.

    Times are Unix seconds. ``shown_gross_kg`` is what the indicator showed while stable
    (less than ``gross_kg`` with wheels off the deck); it and the stable window are None
    for a truck that never stood still. ``barrier_opened_ts`` and ``barrier_writes`` say
    what the agent did with the exit barrier while the truck was on the deck.
    """

    seq: int
    plate: str
    tare_kg: int
    net_kg: int
    gross_kg: int
    scenario: str
    shown_gross_kg: int | None
    arrived: float
    stable_from: float | None
    stable_until: float | None
    left: float
    # first time the barrier was open with this truck on the deck (its arrival if it was
    # open already); None: it stayed shut for the whole visit, or the map has no barrier
    barrier_opened_ts: float | None = None
    # every barrier coil write during the visit: (Unix time, on), in order
    barrier_writes: tuple[tuple[float, bool], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The visit as the control port's ``log`` sends it (JSON: lists, not tuples)."""
        out = asdict(self)
        out["barrier_writes"] = [[ts, on] for ts, on in self.barrier_writes]
        return out


def phase_at(truck: Truck, timing: Timing, t: float) -> tuple[str, float]:
    """The crossing's phase ``t`` seconds after arrival, and how far into it (0..1).

    Phases: ramp, settle, stable (``unsteady`` for a never-stable truck), leave, gone.
    """
    for name, length in (("ramp", timing.ramp_s), ("settle", timing.settle_s),
                         ("stable", timing.stable_s), ("leave", timing.leave_s)):
        if t < length:
            if name == "stable" and truck.scenario == "never_stable":
                name = "unsteady"
            return name, t / length
        t -= length
    return "gone", 1.0


def round_to(value: float, division_kg: int) -> int:
    """Round a weight to the nearest multiple of the scale division e."""
    return round(value / division_kg) * division_kg


def wheels_off_short_kg(gross_kg: int, division_kg: int) -> int:
    """The weight the indicator misses while a wheel group rests off the deck."""
    return max(division_kg, round_to(gross_kg * WHEELS_OFF_SHARE, division_kg))


def resistor_short_kg(gross_kg: int, division_kg: int) -> int:
    """The weight a resistor switched into the load cell cable hides (at least 10 e)."""
    return max(10 * division_kg, round_to(gross_kg * RESISTOR_SHARE, division_kg))


def true_weight(truck: Truck, phase: str, progress: float, division_kg: int) -> int:
    """The weight on the deck in a phase, before any noise."""
    gross = truck.gross_kg
    if phase == "ramp":
        return round_to(gross * progress, division_kg)
    if phase == "leave":
        return round_to(gross * (1.0 - progress), division_kg)
    if phase == "gone":
        return 0
    if phase == "stable" and truck.scenario.startswith("wheels_off"):
        return gross - wheels_off_short_kg(gross, division_kg)
    if phase == "stable" and truck.scenario == "resistor_step" and progress >= RESISTOR_AT:
        return gross - resistor_short_kg(gross, division_kg)
    return gross


def empty_values() -> dict[str, Any]:
    """What the indicator shows with nothing on the deck."""
    return {
        "gross_kg": 0, "tare_kg": 0, "net_kg": 0, "plate": "",
        "status": {"stable": True, "motion": False, "zero": True, "net_mode": False},
        "position": {"entry_blocked": False, "exit_blocked": False,
                     "deck_left_blocked": False, "deck_right_blocked": False},
    }


def truck_values(truck: Truck, phase: str, gross_kg: int) -> dict[str, Any]:
    """What the indicator shows during a crossing (portwatch field vocabulary).

    The truck's stored tare is recalled by plate, so the indicator is in net mode and
    net = gross - tare, negative while the truck is still rolling on.
    """
    stable = phase == "stable"
    return {
        "gross_kg": gross_kg, "tare_kg": truck.tare_kg, "net_kg": gross_kg - truck.tare_kg,
        "plate": truck.plate,
        "status": {"stable": stable, "motion": not stable, "zero": gross_kg == 0,
                   "net_mode": True},
        "position": {"entry_blocked": phase == "ramp", "exit_blocked": phase == "leave",
                     "deck_left_blocked": stable and truck.scenario == "wheels_off_left",
                     "deck_right_blocked": stable and truck.scenario == "wheels_off_right"},
    }


def random_plate(rng: random.Random) -> str:
    """A Liaoning (Dalian) plate such as 辽B7K3Q9: 辽B and five letters or digits."""
    return PLATE_PREFIX + "".join(rng.choice(PLATE_CHARS) for _ in range(5))


def random_truck(rng: random.Random, division_kg: int, capacity_kg: int,
                 scenario: str = "normal", gap_s: float | None = None) -> Truck:
    """A plausible bulk truck: tare 12-20 t, loaded to 40-95 % of what the scale takes."""
    tare = round_to(rng.uniform(12_000, 20_000), division_kg)
    room = max(division_kg, capacity_kg - tare)
    net = max(division_kg, round_to(rng.uniform(0.4, 0.95) * room, division_kg))
    return Truck(random_plate(rng), tare, net, scenario, gap_s)


# ---------------------------------------------------------------- faults


@dataclass
class Faults:
    """Faults currently armed; counts go down as requests consume them."""

    exception_code: int = int(ExcCodes.DEVICE_BUSY)
    exceptions_left: int = 0
    drops_left: int = 0
    silent_until: float = 0.0  # monotonic time until which no request is answered
    noise_e: int = 2  # weight jitter, in divisions, while not stable
    flags: dict[str, float] = field(default_factory=dict)  # name -> monotonic expiry

    def flag_on(self, name: str, now: float) -> bool:
        return self.flags.get(name, 0.0) > now

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "exception_code": self.exception_code, "exceptions_left": self.exceptions_left,
            "drops_left": self.drops_left,
            "silent_s": round(max(0.0, self.silent_until - now), 3),
            "noise_e": self.noise_e,
            "flags": sorted(n for n in FLAG_FAULTS if self.flag_on(n, now)),
        }


def _get(command: dict[str, Any], key: str, kind: type[T], default: T | None = None) -> T:
    """Read a typed parameter from a control command, with a message saying what is wrong."""
    value = command.get(key, default)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is None or isinstance(value, bool) is not (kind is bool) or not isinstance(
            value, kind):
        raise EmulatorError(f"{command.get('cmd')!r} needs {key!r} as {kind.__name__}, "
                            f"got {value!r}")
    return value


def _positive_int(command: dict[str, Any], key: str, default: int) -> int:
    value = _get(command, key, int, default)
    if value < 1:
        raise EmulatorError(f"{key!r} must be at least 1, got {value}")
    return value


# ---------------------------------------------------------------- maps


def load_map(name_or_path: str) -> RegisterMap:
    """Load a bundled map by name (``portwatch-sim``) or any map file by path."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = MAPS_DIR / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in MAPS_DIR.glob("*.json")))
        raise EmulatorError(f"no register map {name_or_path!r}; bundled maps: {known}")
    loaded: RegisterMap = registermap.load(str(path))
    return loaded


def fit_to_map(regmap: RegisterMap, values: dict[str, Any]) -> dict[str, Any]:
    """Keep the fields and bits the map has; a map need not carry all of portwatch's."""
    fitted: dict[str, Any] = {}
    for name, spec in regmap["fields"].items():
        if name not in values:
            continue
        value = values[name]
        if spec["type"] == "bits" and isinstance(value, dict):
            value = {bit: on for bit, on in value.items() if bit in spec["bits"]}
        fitted[name] = value
    return fitted


def map_table(regmap: RegisterMap) -> str:
    """The map as a Markdown register table (the README embeds one per bundled map)."""
    fn = "holding" if regmap["function"] == 3 else "input"
    first, last = regmap["start"], regmap["start"] + regmap["count"] - 1
    lines = [f"Function {regmap['function']} ({fn} registers), one read of {regmap['count']} "
             f"registers at {first}..{last}; division e = {regmap.get('division_kg', '?')} kg, "
             f"capacity {regmap.get('capacity_kg', '?')} kg.",
             "", "| register | field | type | word order | scale | meaning |",
             "|---|---|---|---|---|---|"]
    expected = first
    for name, spec in sorted(regmap["fields"].items(), key=lambda item: item[1]["addr"]):
        if spec["addr"] > expected:
            lines.append(_reserved_row(expected, spec["addr"] - 1))
        lines.append(_table_row(name, spec))
        expected = spec["addr"] + registermap.width(spec)
    if expected <= last:
        lines.append(_reserved_row(expected, last))
    for name, coil in sorted(regmap.get("coils", {}).items()):
        lines += ["", f"Coil {coil['addr']} (written with function 5, read back with 1): "
                      f"`{name}`, {coil.get('description', '')}."]
    return "\n".join(lines) + "\n"


def _span(first: int, last: int) -> str:
    return str(first) if last == first else f"{first}-{last}"


def _reserved_row(first: int, last: int) -> str:
    return f"| {_span(first, last)} | - | reserved | | | reads 0 |"


def _table_row(name: str, spec: dict[str, Any]) -> str:
    kind = spec["type"]
    where = _span(spec["addr"], spec["addr"] + registermap.width(spec) - 1)
    order = spec.get("word_order", "big") if kind in ("uint32", "int32", "float32") else ""
    scale = str(spec.get("scale", 1)) if kind not in ("bits", "str") else ""
    meaning = spec.get("description", spec.get("unit", ""))
    if kind == "bits":
        meaning = ", ".join(f"bit {pos} `{bit}`" for bit, pos in
                            sorted(spec["bits"].items(), key=lambda item: item[1]))
    elif kind == "str":
        kind = f"str, {spec['words']} words"
        meaning = f"{meaning}; {spec.get('encoding', 'utf-8')}, 2 bytes per register " \
                  "high byte first, NUL-padded"
    return f"| {where} | `{name}` | {kind} | {order} | {scale} | {meaning} |"


# ---------------------------------------------------------------- the emulator


@dataclass(frozen=True)
class _Crossing:
    """The truck on the deck now, and the clock its timeline runs on."""

    truck: Truck
    seq: int
    started: float  # monotonic
    arrived: float  # Unix time
    timing: Timing


class WeighbridgeEmulator:
    """A weighing indicator on a Modbus TCP server, with a queue of trucks to weigh.

    Use it as ``async with WeighbridgeEmulator(...) as wb:`` or call ``start`` and
    ``stop``. Port 0 picks a free port; ``modbus_port`` and ``control_port`` tell
    which. ``control_port=None`` serves no control port (in-process use).
    """

    def __init__(self, regmap: RegisterMap | str = "portwatch-sim", *, host: str = "127.0.0.1",
                 port: int = 0, control_port: int | None = None, unit: int = 1,
                 timing: Timing | None = None, noise_e: int = 2,
                 seed: int | None = None, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.regmap: RegisterMap = load_map(regmap) if isinstance(regmap, str) else regmap
        registermap.validate(self.regmap)
        self.division_kg = int(self.regmap.get("division_kg", DEFAULT_DIVISION_KG))
        self.capacity_kg = int(self.regmap.get("capacity_kg", DEFAULT_CAPACITY_KG))
        self.host, self.unit, self.timing = host, unit, timing or Timing()
        self.modbus_port, self.control_port = port, control_port
        self.faults = Faults(noise_e=noise_e)
        self._noise_e = noise_e
        self.requests = self.exceptions_sent = self.replies_dropped = 0
        # Unix time of each register read, the last hour at 10 Hz: a poller's stalls show
        # as gaps (the control port's ``reads``)
        self.read_times: deque[float] = deque(maxlen=36_000)
        self._rng = random.Random(seed)
        self._queue: deque[Truck] = deque()
        self._visits: list[Visit] = []
        self._crossing: _Crossing | None = None
        coils = self.regmap.get("coils", {})
        self.barrier_coil: int | None = coils["barrier"]["addr"] if "barrier" in coils else None
        self.barrier_open = False
        self._barrier_opened: float | None = None  # Unix time, for the truck on the deck
        self._barrier_writes: list[tuple[float, bool]] = []  # ... and its coil writes
        self.coil_writes = 0
        self._last_left = self._epoch = self.clock.monotonic()
        self._drop_next = False
        self._wakeup = asyncio.Event()
        self._server: ModbusTcpServer | None = None
        self._control: asyncio.Server | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle

    async def start(self) -> None:
        """Start serving Modbus (and the control port) and weighing queued trucks."""
        def registers() -> list[SimData]:
            return [SimData(self.regmap["start"], count=self.regmap["count"], values=0,
                            datatype=DataType.REGISTERS, readonly=True)]

        # coils, discrete inputs, holding and input registers; the block is served on both
        # tables so that a read of the other one gets exception 1 (_on_request), as before
        coil = SimData(self.barrier_coil or 0, values=[False], datatype=DataType.BITS)
        inputs = SimData(0, values=[False], datatype=DataType.BITS, readonly=True)
        device = SimDevice(self.unit, simdata=([coil], [inputs], registers(), registers()),
                           action=self._on_request)
        self._server = ModbusTcpServer(device, address=(self.host, self.modbus_port),
                                       trace_packet=self._trace_packet)
        try:
            await self._server.serve_forever(background=True)
        except RuntimeError as exc:
            raise EmulatorError(f"cannot serve Modbus on {self.host}:{self.modbus_port}: "
                                "is the port taken?") from exc
        self.modbus_port = _bound_port(self._server.transport)
        if self.control_port is not None:
            self._control = await asyncio.start_server(self._serve_control, self.host,
                                                       self.control_port)
            self.control_port = _bound_port(self._control)
        self._task = asyncio.create_task(self._run_trucks())

    async def stop(self) -> None:
        """Stop weighing and close both ports."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._control is not None:
            self._control.close()
            await self._control.wait_closed()
        if self._server is not None:
            await self._server.shutdown()  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> WeighbridgeEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def ready_line(self) -> str:
        control = f"{self.host}:{self.control_port}" if self.control_port is not None else "-"
        return (f"{READY_PREFIX} modbus={self.host}:{self.modbus_port} control={control} "
                f"map={self.regmap['model']} unit={self.unit}")

    # -- scripting

    def add_truck(self, truck: Truck) -> int:
        """Queue a truck; it drives on once the deck is free. Returns the queue length."""
        self._check_truck(truck)
        self._queue.append(truck)
        self._wakeup.set()
        return len(self._queue)

    def add_random_trucks(self, count: int, *, interval_s: float | None = None,
                          every_s: float | None = None,
                          scenario: str = "normal") -> list[Truck]:
        """Queue ``count`` random trucks.

        ``interval_s`` is the empty-deck time between two trucks, so arrivals are a
        crossing (``Timing.crossing_s``) plus ``interval_s`` apart; ``every_s`` is the time
        from one arrival to the next instead, with the current timing. Neither: the
        timing's ``gap_s`` of empty deck.
        """
        if interval_s is not None and every_s is not None:
            raise EmulatorError("give interval_s (empty deck between trucks) or every_s "
                                "(arrival to arrival), not both")
        if every_s is not None:
            interval_s = self.empty_deck_for(every_s)
        trucks = [random_truck(self._rng, self.division_kg, self.capacity_kg, scenario,
                               interval_s) for _ in range(count)]
        for truck in trucks:
            self.add_truck(truck)
        return trucks

    def empty_deck_for(self, every_s: float) -> float:
        """The empty-deck time that makes trucks arrive every ``every_s`` seconds."""
        t = self.timing
        # 1 ns of slack: phases scaled to fit a period add up to it only within rounding
        if not math.isfinite(every_s) or every_s < t.crossing_s + t.gap_s - 1e-9:
            raise EmulatorError(
                f"trucks cannot arrive every {every_s:g} s: a crossing takes "
                f"{t.crossing_s:g} s (ramp {t.ramp_s:g} + settle {t.settle_s:g} + stable "
                f"{t.stable_s:g} + leave {t.leave_s:g}) and the deck stays empty at least "
                f"gap {t.gap_s:g} s, so at least {t.crossing_s + t.gap_s:g} s; shorten the "
                "phases or let them come less often")
        return max(0.0, every_s - t.crossing_s)

    def inject(self, kind: str, *, code: int = int(ExcCodes.DEVICE_BUSY), count: int = 1,
               seconds: float | None = None, e: int = 2, on: bool = True) -> dict[str, Any]:
        """Arm a fault; returns the faults now armed. See FAULT_KINDS and the README."""
        now = self.clock.monotonic()
        if kind == "exception":
            self.faults.exception_code = _exception_code(code)
            self.faults.exceptions_left = count
        elif kind == "timeout" and seconds is not None:
            self.faults.silent_until = now + seconds
        elif kind == "timeout":
            self.faults.drops_left = count
        elif kind == "noise":
            if e < 0:
                raise EmulatorError("noise e must be >= 0 divisions")
            self.faults.noise_e = e
        elif kind in FLAG_FAULTS:
            self.faults.flags[kind] = (now + seconds if seconds is not None else math.inf) \
                if on else 0.0
        else:
            raise EmulatorError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
        return self.faults.to_json(now)

    def clear_faults(self) -> None:
        """Disarm every fault and put the noise back to its starting level."""
        self.faults = Faults(noise_e=self._noise_e)

    def set_timing(self, **changes: float) -> Timing:
        """Change phase durations for trucks that arrive from now on."""
        unknown = set(changes) - {f.name for f in fields(Timing)}
        if unknown:
            raise EmulatorError(f"unknown timing {sorted(unknown)}; use ramp_s, settle_s, "
                                "stable_s, leave_s, gap_s")
        self.timing = replace(self.timing, **changes)
        return self.timing

    # -- reading back

    @property
    def visits(self) -> list[Visit]:
        """Completed crossings, oldest first."""
        return list(self._visits)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """No truck on the deck and none waiting."""
        return self._crossing is None and not self._queue

    def phase(self) -> str:
        crossing = self._crossing
        if crossing is None:
            return "empty"
        return phase_at(crossing.truck, crossing.timing,
                        self.clock.monotonic() - crossing.started)[0]

    def current_values(self) -> dict[str, Any]:
        """What the indicator shows right now, in portwatch's field vocabulary."""
        now = self.clock.monotonic()
        values = self._deck_values(now)
        status = values["status"]
        status["overload"] = values["gross_kg"] > self.capacity_kg or self.faults.flag_on(
            "overload", now)
        status["setup"] = self.faults.flag_on("setup", now)
        status["remote_cal"] = self.faults.flag_on("remote_cal", now)
        values["heartbeat"] = int((now - self._epoch) * 10) & 0xFFFF
        return values

    def registers(self) -> list[int]:
        """The register block as a client reading it now would see it."""
        words: list[int] = registermap.encode(self.regmap,
                                              fit_to_map(self.regmap, self.current_values()))
        return words

    def status(self) -> dict[str, Any]:
        crossing = self._crossing
        return {
            "map": self.regmap["model"], "phase": self.phase(), "idle": self.idle,
            "barrier": {"coil": self.barrier_coil, "open": self.barrier_open,
                        "writes": self.coil_writes},
            "truck": asdict(crossing.truck) if crossing else None,
            "queued": self.queued, "visits": len(self._visits),
            "requests": self.requests, "exceptions_sent": self.exceptions_sent,
            "replies_dropped": self.replies_dropped,
            "faults": self.faults.to_json(self.clock.monotonic()),
            "timing": asdict(self.timing),
            "reading": registermap.decode(self.regmap, self.registers()),
        }

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every queued truck has crossed and the deck is empty."""
        await _poll(lambda: self.idle, timeout, "the weighbridge to become idle")

    async def wait_visits(self, count: int, timeout: float = 30.0) -> list[Visit]:
        """Wait until at least ``count`` crossings have completed; return them all."""
        await _poll(lambda: len(self._visits) >= count, timeout, f"{count} visits")
        return self.visits

    # -- internals: the deck

    def _check_truck(self, truck: Truck) -> None:
        e = self.division_kg
        if truck.scenario not in SCENARIOS:
            raise EmulatorError(f"unknown scenario {truck.scenario!r}; use {', '.join(SCENARIOS)}")
        if truck.tare_kg <= 0 or truck.net_kg < 0:
            raise EmulatorError("a truck needs tare_kg > 0 and net_kg >= 0")
        if truck.gap_s is not None and truck.gap_s < 0:
            raise EmulatorError("a truck's gap_s must be >= 0 seconds")
        if truck.tare_kg % e or truck.net_kg % e:
            raise EmulatorError(f"weights must be multiples of the division e = {e} kg "
                                f"(got tare {truck.tare_kg}, net {truck.net_kg})")
        plate_field = self.regmap["fields"].get("plate")
        if not truck.plate or plate_field is None:
            return
        try:
            registermap.encode_field(plate_field, truck.plate, "plate")
        except registermap.RegisterMapError as exc:
            raise EmulatorError(f"plate {truck.plate!r} does not fit this map: {exc}") from exc

    def _deck_values(self, now: float) -> dict[str, Any]:
        crossing = self._crossing
        if crossing is None:
            return empty_values()
        truck = crossing.truck
        phase, progress = phase_at(truck, crossing.timing, now - crossing.started)
        if phase == "gone":
            return empty_values()
        gross = true_weight(truck, phase, progress, self.division_kg)
        if phase != "stable":
            gross = max(0, gross + self._jitter(phase))
        return truck_values(truck, phase, gross)

    def _jitter(self, phase: str) -> int:
        amplitude = self.faults.noise_e
        if phase == "unsteady":  # it must visibly move, or it would look stable
            amplitude = max(1, amplitude)
        return self._rng.randint(-amplitude, amplitude) * self.division_kg

    async def _run_trucks(self) -> None:
        while True:
            while not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            truck = self._queue[0]
            gap = self.timing.gap_s if truck.gap_s is None else truck.gap_s
            due, now = self._last_left + gap, self.clock.monotonic()
            if due > now:
                await self.clock.sleep(due - now)
                # The truck arrives when due, however late this task woke: the arrival
                # schedule keeps its period instead of drifting by every wake-up's delay.
                now = due
            self._queue.popleft()
            arrived = self.clock.time() - (self.clock.monotonic() - now)
            crossing = _Crossing(truck, len(self._visits) + 1, now, arrived, self.timing)
            self._barrier_opened = arrived if self.barrier_open else None
            self._barrier_writes = []
            self._crossing = crossing
            await self.clock.sleep(crossing.timing.crossing_s)
            self._visits.append(replace(_visit_of(crossing, self.division_kg),
                                        barrier_opened_ts=self._barrier_opened,
                                        barrier_writes=tuple(self._barrier_writes)))
            self._crossing = None
            # The truck left when its timeline says (the deck reads empty from then on),
            # not when this task woke up: a late wake-up must not push every later
            # arrival back, or trucks meant to come every N s drift later and later.
            self._last_left = crossing.started + crossing.timing.crossing_s

    # -- internals: Modbus

    async def _on_request(self, function_code: int, start_address: int, address: int,
                          count: int, registers: list[int],
                          set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus calls this before answering: refresh the block, fail it, or take a write."""
        if function_code in (1, 5):
            return self._on_coil(function_code, address, set_values)
        self.requests += 1
        self.read_times.append(self.clock.time())
        if function_code != self.regmap["function"]:
            self.exceptions_sent += 1
            return ExcCodes.ILLEGAL_FUNCTION  # a real indicator has one register table
        if self.faults.drops_left > 0 or self.clock.monotonic() < self.faults.silent_until:
            self.faults.drops_left = max(0, self.faults.drops_left - 1)
            self._drop_next = True  # _trace_packet swallows the reply
        elif self.faults.exceptions_left > 0:
            self.faults.exceptions_left -= 1
            self.exceptions_sent += 1
            return ExcCodes(self.faults.exception_code)
        registers[: self.regmap["count"]] = self.registers()
        return None

    def _on_coil(self, function_code: int, address: int,
                 set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """The barrier relay: written with 05 (pymodbus then reads it back for the reply,
        without values), read with 01. Any other coil does not exist (exception 2)."""
        if address != self.barrier_coil:
            self.exceptions_sent += 1
            return ExcCodes.ILLEGAL_ADDRESS
        if set_values is None:
            return None
        self.requests += 1
        if self.clock.monotonic() < self.faults.silent_until:  # a silent device: not taken
            self._drop_next = True
            return ExcCodes.DEVICE_BUSY  # never sent: _trace_packet swallows the reply
        self._set_barrier(bool(set_values[0]))
        return None

    def _set_barrier(self, on: bool) -> None:
        now = self.clock.time()
        self.coil_writes += 1
        self.barrier_open = on
        if self._crossing is not None:
            self._barrier_writes.append((now, on))
            if on and self._barrier_opened is None:
                self._barrier_opened = now

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # The request handler sends straight after _on_request returns, with no await in
        # between, so the flag always belongs to this reply.
        if sending and self._drop_next:
            self._drop_next = False
            self.replies_dropped += 1
            return b""  # asyncio writes nothing: the client times out
        return data

    # -- internals: control port

    async def _serve_control(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = self.handle_line(line)
                writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a client that hangs up or sends a 64 KiB line is dropped
        finally:
            writer.close()

    def handle_line(self, line: bytes) -> dict[str, Any]:
        """Answer one control-port line (a JSON object) with a JSON-able reply."""
        try:
            try:
                command = json.loads(line)
            except ValueError as exc:
                raise EmulatorError(f"not JSON ({exc}): send one object per line") from exc
            if not isinstance(command, dict):
                raise EmulatorError('send one JSON object per line, e.g. {"cmd": "status"}')
            return {"ok": True, **self.handle_command(command)}
        except (EmulatorError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}

    def handle_command(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command.get("cmd")
        handler = _COMMANDS.get(name) if isinstance(name, str) else None
        if handler is None:
            raise EmulatorError(f"unknown cmd {name!r}; use one of {', '.join(_COMMANDS)}")
        return handler(self, command)


def _visit_of(crossing: _Crossing, division_kg: int) -> Visit:
    truck, timing = crossing.truck, crossing.timing
    stable_from: float | None = crossing.arrived + timing.ramp_s + timing.settle_s
    stable_until: float | None = crossing.arrived + timing.ramp_s + timing.settle_s \
        + timing.stable_s
    # what the indicator showed at the end of its stable time (after a resistor's step)
    shown: int | None = true_weight(truck, "stable", 1.0, division_kg)
    if truck.scenario == "never_stable":
        stable_from = stable_until = shown = None
    return Visit(crossing.seq, truck.plate, truck.tare_kg, truck.net_kg, truck.gross_kg,
                 truck.scenario, shown, crossing.arrived, stable_from, stable_until,
                 crossing.arrived + timing.crossing_s)


def _exception_code(code: int) -> int:
    try:
        return int(ExcCodes(code))
    except ValueError:
        known = ", ".join(f"{int(c)} {c.name}" for c in ExcCodes)
        raise EmulatorError(f"no Modbus exception code {code}; use {known}") from None


def _bound_port(server: object) -> int:
    sockets = getattr(server, "sockets", None)
    if not sockets:
        raise EmulatorError("server is not listening")
    port: int = sockets[0].getsockname()[1]
    return port


async def _poll(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------- control commands


def _cmd_help(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    return {"commands": {name: doc for name, (_, doc) in _COMMAND_DOCS.items()}}


def _cmd_truck(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    gap = command.get("gap_s")
    truck = Truck(_get(command, "plate", str), _get(command, "tare_kg", int),
                  _get(command, "net_kg", int), _get(command, "scenario", str, "normal"),
                  None if gap is None else _get(command, "gap_s", float))
    return {"queued": wb.add_truck(truck), "truck": asdict(truck)}


def _cmd_auto(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    interval, every = command.get("interval_s"), command.get("every_s")
    trucks = wb.add_random_trucks(
        _positive_int(command, "count", 1),
        interval_s=None if interval is None else _get(command, "interval_s", float),
        every_s=None if every is None else _get(command, "every_s", float),
        scenario=_get(command, "scenario", str, "normal"))
    return {"queued": wb.queued, "trucks": [asdict(t) for t in trucks]}


def _cmd_fault(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    seconds = command.get("seconds")
    faults = wb.inject(
        _get(command, "kind", str),
        code=_get(command, "code", int, int(ExcCodes.DEVICE_BUSY)),
        count=_positive_int(command, "count", 1),
        seconds=None if seconds is None else _get(command, "seconds", float),
        e=_get(command, "e", int, 2), on=_get(command, "on", bool, True))
    return {"faults": faults}


def _cmd_clear(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    wb.clear_faults()
    return {"faults": wb.faults.to_json(wb.clock.monotonic())}


def _cmd_timing(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    changes = {key: _get(command, key, float) for key in command if key != "cmd"}
    return {"timing": asdict(wb.set_timing(**changes))}


def _cmd_status(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    return wb.status()


def _cmd_log(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    since = _get(command, "since", int, 0)
    return {"visits": [v.to_json() for v in wb.visits if v.seq > since]}


def _cmd_reads(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    since = _get(command, "since", float, 0.0)
    return {"reads": [t for t in wb.read_times if t > since]}


def _cmd_map(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    return {"map": wb.regmap}


def _cmd_registers(wb: WeighbridgeEmulator, command: dict[str, Any]) -> dict[str, Any]:
    return {"start": wb.regmap["start"], "function": wb.regmap["function"],
            "registers": wb.registers()}


Handler = Callable[[WeighbridgeEmulator, dict[str, Any]], dict[str, Any]]
_COMMAND_DOCS: dict[str, tuple[Handler, str]] = {
    "help": (_cmd_help, "this list"),
    "truck": (_cmd_truck, "queue a truck: plate, tare_kg, net_kg, [scenario], [gap_s]"),
    "auto": (_cmd_auto, "queue random trucks: count, [interval_s (empty deck between) | "
             "every_s (arrival to arrival)], [scenario]"),
    "fault": (_cmd_fault, "arm a fault: kind = exception [code, count] | timeout [count | "
              "seconds] | noise [e] | overload | setup | remote_cal [on, seconds]"),
    "clear": (_cmd_clear, "disarm all faults"),
    "timing": (_cmd_timing, "change ramp_s, settle_s, stable_s, leave_s, gap_s"),
    "status": (_cmd_status, "phase, truck on deck, queue, counters, faults, decoded reading"),
    "log": (_cmd_log, "completed visits with exact plate and weights: [since] = last seq seen"),
    "reads": (_cmd_reads, "Unix times of the register reads (the last 36,000): [since]"),
    "map": (_cmd_map, "the register map being served"),
    "registers": (_cmd_registers, "the raw register block as a client would read it now"),
}
_COMMANDS: dict[str, Handler] = {name: handler for name, (handler, _) in _COMMAND_DOCS.items()}


# ---------------------------------------------------------------- control client


def control(port: int, command: dict[str, Any], *, host: str = "127.0.0.1",
            timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to an emulator's control port; return its reply.

    Raises ControlError when the port is unreachable or the emulator refuses.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(json.dumps(command, ensure_ascii=False).encode() + b"\n")
            data = _read_line(sock)
    except OSError as exc:
        raise ControlError(f"weighbridge control port {host}:{port} did not answer ({exc}); "
                           "is the emulator running with --control-port?") from exc
    reply: dict[str, Any] = json.loads(data)
    if not reply.get("ok"):
        raise ControlError(f"weighbridge refused {command.get('cmd')!r}: {reply.get('error')}")
    return reply


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while not chunks or not chunks[-1].endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("control port closed before replying")
        chunks.append(chunk)
    return b"".join(chunks)


class ControlClient:
    """A synchronous client for the control port (tests, the demo, the CLI)."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.port, self.host, self.timeout = port, host, timeout

    def send(self, cmd: str, **params: Any) -> dict[str, Any]:
        return control(self.port, {"cmd": cmd, **params}, host=self.host, timeout=self.timeout)

    def truck(self, plate: str, tare_kg: int, net_kg: int, *, scenario: str = "normal",
              gap_s: float | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"plate": plate, "tare_kg": tare_kg, "net_kg": net_kg,
                                  "scenario": scenario}
        if gap_s is not None:
            params["gap_s"] = gap_s
        return self.send("truck", **params)

    def auto(self, count: int, *, interval_s: float | None = None,
             every_s: float | None = None, scenario: str = "normal") -> list[dict[str, Any]]:
        params: dict[str, Any] = {"count": count, "scenario": scenario}
        if interval_s is not None:
            params["interval_s"] = interval_s
        if every_s is not None:
            params["every_s"] = every_s
        trucks: list[dict[str, Any]] = self.send("auto", **params)["trucks"]
        return trucks

    def fault(self, kind: str, **params: Any) -> dict[str, Any]:
        faults: dict[str, Any] = self.send("fault", kind=kind, **params)["faults"]
        return faults

    def clear(self) -> dict[str, Any]:
        return self.send("clear")

    def timing(self, **changes: float) -> dict[str, Any]:
        timing: dict[str, Any] = self.send("timing", **changes)["timing"]
        return timing

    def status(self) -> dict[str, Any]:
        return self.send("status")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        visits: list[dict[str, Any]] = self.send("log", since=since)["visits"]
        return visits

    def reads(self, since: float = 0.0) -> list[float]:
        """Unix times of the register reads after ``since``, oldest first."""
        times: list[float] = self.send("reads", since=since)["reads"]
        return times

    def wait_idle(self, timeout: float = 30.0) -> dict[str, Any]:
        """Poll until no truck is on the deck or queued; return the status."""
        return wait_until(lambda: (s := self.status())["idle"] and s, timeout,
                          what="the weighbridge emulator to become idle")

    def wait_visits(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll until at least ``count`` visits completed; return them all."""
        def enough() -> list[dict[str, Any]] | None:
            visits = self.log()
            return visits if len(visits) >= count else None

        return wait_until(enough, timeout, what=f"{count} weighbridge visits")


# ---------------------------------------------------------------- subprocess helpers


def parse_ready(line: str) -> dict[str, str]:
    """Parse the ready line into {"modbus": "host:port", "control": ..., "map": ...}."""
    if not line.startswith(READY_PREFIX):
        raise EmulatorError(f"not a weighbridge ready line: {line!r}")
    return dict(part.split("=", 1) for part in line[len(READY_PREFIX):].split() if "=" in part)


def _port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@dataclass
class EmulatorProcess:
    """A weighbridge emulator running as a child process (see ``spawn``)."""

    proc: subprocess.Popen[bytes]
    modbus_port: int
    control_port: int
    map_name: str

    @property
    def client(self) -> ControlClient:
        return ControlClient(self.control_port)

    def stop(self) -> None:
        stop_process(self.proc)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def spawn(*args: str, timeout: float = 15.0) -> EmulatorProcess:
    """Start ``python -m tools.emulators.weighbridge`` with free ports and wait until ready.

    ``args`` are extra command-line options, e.g. ``"--map", "float32-le-sim"``.
    """
    cmd = [sys.executable, "-m", "tools.emulators.weighbridge", "--port", "0",
           "--control-port", "0", *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_pump, args=(proc, lines), daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
        fields_ = parse_ready(line)
    except (queue.Empty, EmulatorError) as exc:
        stop_process(proc)
        raise EmulatorError(f"weighbridge emulator did not get ready ({' '.join(cmd)}; "
                            f"exit code {proc.returncode})") from exc
    return EmulatorProcess(proc, _port_of(fields_["modbus"]), _port_of(fields_["control"]),
                           fields_["map"])


def _pump(proc: subprocess.Popen[bytes], lines: queue.Queue[str]) -> None:
    """Hand the child's stdout lines over, and keep draining so it never blocks."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.put(raw.decode(errors="replace").rstrip("\n"))


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    t = Timing()
    p = argparse.ArgumentParser(
        prog="python -m tools.emulators.weighbridge",
        description="Truck weighbridge indicator emulator: Modbus TCP server + JSON-lines "
                    "control port.",
        epilog="examples:\n"
               "  python -m tools.emulators.weighbridge --port 5020 --control-port 5021\n"
               "  python -m tools.emulators.weighbridge --map float32-le-sim --auto 20\n"
               "  python -m tools.emulators.weighbridge --map portwatch-sim --print-map\n"
               "  portwatch emulator status --control 127.0.0.1:5021   # drive it: "
               "portwatch emulator --help",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5020, help="Modbus TCP port (0: any free)")
    p.add_argument("--control-port", type=int, default=5021, help="control port (0: any free)")
    p.add_argument("--map", default="portwatch-sim", help="bundled map name or a .json path")
    p.add_argument("--unit", type=int, default=1,
                   help="Modbus unit id; 0 answers any id, otherwise other ids get exception 4")
    for name, what in (("ramp_s", "driving on"), ("settle_s", "rocking on the deck"),
                       ("stable_s", "stable"), ("leave_s", "driving off"),
                       ("gap_s", "empty deck between trucks")):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(t, name),
                       metavar="S", help=f"seconds {what} (default {getattr(t, name)})")
    p.add_argument("--noise-e", type=int, default=2, help="jitter in divisions while moving")
    p.add_argument("--seed", type=int, default=None, help="seed for random trucks and noise")
    p.add_argument("--auto", type=int, default=0, metavar="N", help="queue N random trucks")
    auto = p.add_mutually_exclusive_group()
    auto.add_argument("--auto-interval", type=float, default=None, metavar="S",
                      help="seconds of empty deck between the random trucks: arrivals are "
                           "this plus a crossing (ramp + settle + stable + leave) apart")
    auto.add_argument("--auto-every", type=float, default=None, metavar="S",
                      help="seconds from one random truck's arrival to the next (at least "
                           "a crossing plus --gap-s)")
    p.add_argument("--scenario", choices=SCENARIOS, default="normal",
                   help="scenario of the random trucks (see the control port's help)")
    p.add_argument("--print-map", action="store_true",
                   help="print the map's register table (Markdown) and exit")
    return p


def emulator_from_args(args: argparse.Namespace, *,
                       clock: Clock | None = None) -> WeighbridgeEmulator:
    """The emulator the command line describes, its random trucks queued (not started)."""
    timing = Timing(args.ramp_s, args.settle_s, args.stable_s, args.leave_s, args.gap_s)
    emulator = WeighbridgeEmulator(args.map, host=args.host, port=args.port,
                                   control_port=args.control_port, unit=args.unit,
                                   timing=timing, noise_e=args.noise_e, seed=args.seed,
                                   clock=clock)
    if args.auto:
        emulator.add_random_trucks(args.auto, interval_s=args.auto_interval,
                                   every_s=args.auto_every, scenario=args.scenario)
    elif args.auto_interval is not None or args.auto_every is not None \
            or args.scenario != "normal":
        raise EmulatorError("--auto-interval, --auto-every and --scenario apply to the "
                            "random trucks of --auto N: give --auto too")
    return emulator


async def _serve(args: argparse.Namespace) -> None:
    emulator = emulator_from_args(args)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    await emulator.start()
    # ready only now that a stop signal is handled: one sent at once still stops it cleanly
    print(emulator.ready_line(), flush=True)
    await stopping.wait()
    await emulator.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The emulator's command line (``python -m tools.emulators.weighbridge --help``)."""
    return _parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator from a command line until SIGINT or SIGTERM; return an exit code."""
    args = parse_args(argv)
    try:
        if args.print_map:
            print(map_table(load_map(args.map)), end="")
            return 0
        asyncio.run(_serve(args))
    except (EmulatorError, registermap.RegisterMapError) as exc:
        print(f"weighbridge: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
