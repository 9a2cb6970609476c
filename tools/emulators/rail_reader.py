"""An AEI rail reader at the rail yard, emulated: trains of tagged cars, scripted.

Per train it sends, once the train has passed, the reader's header (time of the first
axle, direction, the radar's speed, the wheel sensors' axle count), one line per tag read
(sequence, the raw AAR S-918 tag in hex, antenna, the in-motion scale's weight of the car)
and an end line, in the line protocol of ``protocols/aeiline.py`` (XOR checksum over the
payload, ``*hh``, CR LF) on a TCP port; every connected client gets each line.

A ``TrainScript`` says what passes: the manifest's cars in order, then its faults: cars
``missing`` from the train (left in the yard: no tag, no axles), ``extra`` cars coupled
in the middle of the train, two cars ``swap``-ped, cars whose tag is ``unreadable`` (its
first checksum wrong: the car and its axles are there). ``passed`` gives the cars on the
rails in order with their tag, so a test can compare what the controller stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from protocols import aeiline, s918

# axle spacing and car lengths only set the train's duration at the radar's speed
DEFAULT_LENGTH_DM = 150
DEFAULT_AXLES = 4


@dataclass(frozen=True)
class Car:
    """A tagged car (or locomotive: group 5)."""

    initial: str
    number: int
    length_dm: int = DEFAULT_LENGTH_DM
    axles: int = DEFAULT_AXLES
    weight_kg: int | None = None
    side: int = 0
    group: int = s918.GROUP_RAILCAR

    def tag(self) -> str:
        """The car's S-918 tag as 32 hex digits."""
        return s918.encode(self.initial, self.number, side=self.side,
                           length_dm=self.length_dm, axles=self.axles, group=self.group)


@dataclass(frozen=True)
class TrainScript:
    """One train past the reader: its manifest's cars and what differs on the rails."""

    train_id: str
    cars: tuple[Car, ...]
    direction: str = "out"
    speed_dkmh: int = 150
    locos: tuple[Car, ...] = ()
    missing: tuple[int, ...] = ()  # indexes into cars
    extra: tuple[Car, ...] = ()  # coupled after the middle car of the manifest
    swap: tuple[int, int] | None = None  # indexes into cars
    unreadable: tuple[int, ...] = ()  # indexes into cars


@dataclass
class Passed:
    """A car as it passed: its tag as read (corrupted when unreadable)."""

    car: Car
    tag_hex: str
    readable: bool
    loco: bool = False


def manifest_cars(n: int, initial: str = "DLCX", first: int = 100001,
                  weight_kg: int | None = 80000) -> tuple[Car, ...]:
    """``n`` grain hoppers numbered from ``first`` (weights vary by car, +-1.5 t)."""
    return tuple(Car(initial, first + i, weight_kg=None if weight_kg is None
                     else weight_kg + (i * 379) % 3000 - 1500) for i in range(n))


def passed(script: TrainScript) -> list[Passed]:
    """The train on the rails, locomotives first, after the script's faults."""
    order = list(range(len(script.cars)))
    if script.swap is not None:
        a, b = script.swap
        order[a], order[b] = order[b], order[a]
    out = [Passed(c, c.tag(), True, loco=True) for c in script.locos]
    cut = len(script.cars) // 2
    for pos, i in enumerate(order):
        if pos == cut:
            out += [Passed(c, c.tag(), True) for c in script.extra]
        if i in script.missing:
            continue
        car = script.cars[i]
        if i in script.unreadable:
            out.append(Passed(car, s918.corrupt(car.tag()), False))
        else:
            out.append(Passed(car, car.tag(), True))
    if cut >= len(order):
        out += [Passed(c, c.tag(), True) for c in script.extra]
    return out


def train_lines(script: TrainScript, start_ms: int) -> list[bytes]:
    """The reader's lines for ``script`` whose first axle passed at ``start_ms``."""
    cars = passed(script)
    axles = sum(p.car.axles for p in cars)
    length_m = sum(p.car.length_dm for p in cars) / 10
    duration_ms = int(length_m / max(script.speed_dkmh, 1) * 36000)
    d = "I" if script.direction == "in" else "O"
    lines = [aeiline.frame(f"TRN,{script.train_id},{start_ms},{d},{script.speed_dkmh},{axles}")]
    for seq, p in enumerate(cars, 1):
        weight = "" if p.loco or p.car.weight_kg is None else str(p.car.weight_kg)
        lines.append(aeiline.frame(f"TAG,{seq},{p.tag_hex},{1 + p.car.side},{weight}"))
    lines.append(aeiline.frame(f"END,{script.train_id},{start_ms + duration_ms},{len(cars)}"))
    return lines


@dataclass
class RailReaderServer:
    """The reader's TCP port: each connected client gets every line from when it joined."""

    port: int = 0
    sent_lines: int = 0
    dropped_clients: int = 0
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (port 0: any free one); return the port."""
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def clients(self) -> int:
        """How many clients are connected now."""
        return len(self._writers)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)

    async def send_lines(self, lines: Sequence[bytes], line_gap_s: float = 0.0) -> None:
        """Write ``lines`` to every client (a stuck or gone client is dropped)."""
        for line in lines:
            for w in list(self._writers):
                try:
                    w.write(line)
                    await asyncio.wait_for(w.drain(), 5)
                except (OSError, TimeoutError):
                    self._writers.discard(w)
                    self.dropped_clients += 1
                    w.close()
            self.sent_lines += 1
            if line_gap_s:
                await asyncio.sleep(line_gap_s)

    async def send_train(self, script: TrainScript, start_ms: int,
                         line_gap_s: float = 0.0) -> list[bytes]:
        """Send one train's lines; return them."""
        lines = train_lines(script, start_ms)
        await self.send_lines(lines, line_gap_s)
        return lines

    async def close(self) -> None:
        """Stop listening and drop the clients."""
        for w in list(self._writers):
            w.close()
        self._writers.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
