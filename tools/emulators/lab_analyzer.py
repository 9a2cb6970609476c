"""An online grain analyzer on the unloading line, emulated: scripted results over TCP.

It takes a sample from the belt every ``interval_s`` of its clock and sends one result
line per sample in the line protocol of ``protocols/labline.py`` (``RES,...*hh`` CR LF)
to every connected client. Its clock may run faster than the wall (``speed``): the
sampling times in the lines are device time, ``start_ms`` plus the intervals, while the
lines go out every ``interval_s / speed`` wall seconds.

A script (``LabScript``) says what each sample shows: clean grain by default, then
faults at chosen sample numbers: a quarantine weed (``weed``: species, seeds counted),
moisture over a limit (``wet``), an ``outlier`` result, a line with a wrong checksum
(``corrupt``). Like a real analyzer's buffer, a client that connects is sent the last
``resend`` results again first (the agent must not store them twice).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from protocols import labline

WEEDS = ("Ambrosia artemisiifolia", "Avena sterilis", "Sorghum halepense",
         "Cuscuta campestris")
SAMPLE_MASS_G = 1000


@dataclass(frozen=True)
class Result:
    """One analyzer result as sent; integers as in the ``sample`` body."""

    sample_id: str
    sampled_ms: int
    moisture_pm: int = 125
    basis: str = "wet"
    protein_pm: int = 355
    impurity_pm: int = 8
    test_weight_g_per_l: int = 720
    calibration_id: str = "CAL-LAB1-2026-11"
    outlier: bool = False
    findings: tuple[tuple[str, int, int], ...] = ()

    def line(self) -> str:
        """The result line without CR LF."""
        line: str = labline.build(  # type: ignore[no-untyped-call]
            self.sample_id, iso_utc(self.sampled_ms), self.moisture_pm, self.basis,
            self.protein_pm, self.impurity_pm, self.test_weight_g_per_l,
            self.calibration_id, self.outlier, [list(f) for f in self.findings])
        return line


def iso_utc(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of epoch ``ms`` (whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


@dataclass(frozen=True)
class LabScript:
    """What the analyzer finds in its samples, by sample number (1-based)."""

    prefix: str = "S"
    start_ms: int = 0
    interval_s: float = 60.0
    weed: Mapping[int, tuple[str, int]] = field(default_factory=dict)
    wet: Mapping[int, int] = field(default_factory=dict)  # moisture per mille
    outlier: Sequence[int] = ()
    corrupt: Sequence[int] = ()

    def result(self, n: int) -> Result:
        """Sample number ``n``: clean grain unless the script says otherwise (its protein
        and impurity vary a little from sample to sample, as a belt's do)."""
        findings: tuple[tuple[str, int, int], ...] = ()
        if n in self.weed:
            species, count = self.weed[n]
            findings = ((species, count, SAMPLE_MASS_G),)
        return Result(sample_id=f"{self.prefix}-{n:05d}",
                      sampled_ms=self.start_ms + int((n - 1) * self.interval_s * 1000),
                      moisture_pm=self.wet.get(n, 118 + n % 7),
                      protein_pm=350 + n * 7 % 11, impurity_pm=5 + n % 4,
                      outlier=n in self.outlier, findings=findings)

    def frame(self, n: int) -> bytes:
        """Sample ``n``'s line as sent, CR LF; a ``corrupt`` one with its checksum off."""
        line = self.result(n).line()
        if n in self.corrupt:
            line = line[:-2] + ("00" if line[-2:] != "00" else "01")
        return (line + "\r\n").encode()

    def results(self, count: int, first: int = 1) -> Iterator[Result]:
        """Results ``first`` .. ``first + count - 1``."""
        return (self.result(n) for n in range(first, first + count))


@dataclass
class LabAnalyzerServer:
    """The analyzer's TCP port: each client gets every line, the last ``resend`` first."""

    resend: int = 3
    port: int = 0
    sent: list[bytes] = field(default_factory=list)
    dropped_clients: int = 0
    connections: int = 0
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
        self.connections += 1
        for line in self.sent[-self.resend:] if self.resend else []:
            writer.write(line)
        try:
            await asyncio.wait_for(writer.drain(), 5)
        except (OSError, TimeoutError):
            writer.close()
            return
        self._writers.add(writer)

    async def send(self, line: bytes) -> None:
        """Write one line (with its CR LF) to every client; a stuck or gone one is dropped."""
        self.sent.append(line)
        for w in list(self._writers):
            try:
                w.write(line)
                await asyncio.wait_for(w.drain(), 5)
            except (OSError, TimeoutError):
                self._writers.discard(w)
                self.dropped_clients += 1
                w.close()

    async def run(self, script: LabScript, count: int, *, speed: float = 1.0,
                  first: int = 1) -> None:
        """Send samples ``first`` .. ``first + count - 1`` at ``interval_s / speed``."""
        gap = script.interval_s / speed if speed > 0 else 0.0
        for n in range(first, first + count):
            await self.send(script.frame(n))
            if gap and n < first + count - 1:
                await asyncio.sleep(gap)  # the analyzer's own pace, not synchronisation

    async def drop_clients(self) -> None:
        """Close every client's link (the analyzer restarts its network stack)."""
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def close(self) -> None:
        """Stop listening and drop the clients."""
        await self.drop_clients()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
