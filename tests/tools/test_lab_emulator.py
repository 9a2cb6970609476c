"""The lab analyzer's emulator (tools/emulators/lab_analyzer.py) over a real TCP port: its
scripted results parse as the agent parses them, faults where the script puts them, a
reconnecting client gets the last results again, and the edge lab driver (run here under
CPython against the emulator) stores each result once; the CLI's help has an example."""

from __future__ import annotations

import asyncio
from typing import Any

from typer.testing import CliRunner

from edge.drivers.lab import LabDriver
from protocols import bodies, labline
from tools.cli import app
from tools.emulators.lab_analyzer import LabAnalyzerServer, LabScript

T0 = 1796083200000  # 2026-12-01T00:00:00Z
SCRIPT = LabScript(start_ms=T0, interval_s=60, weed={5: ("Ambrosia artemisiifolia", 3)},
                   wet={7: 152}, outlier=(8,), corrupt=(9,))


def _parse(line: bytes) -> dict[str, Any]:
    body: dict[str, Any] = labline.parse(line.rstrip(b"\r\n"))  # type: ignore[no-untyped-call]
    return body


def test_lab_emulator_script_puts_faults_where_asked() -> None:
    results = [_parse(SCRIPT.frame(n)) for n in range(1, 9)]
    assert [r["sample_id"] for r in results] == [f"S-{n:05d}" for n in range(1, 9)]
    assert [r["sampled_ts"] - T0 for r in results] == [n * 60_000 for n in range(8)]
    assert [r["findings"] for r in results][4] == [["Ambrosia artemisiifolia", 3, 1000]]
    assert [bool(r["findings"]) for r in results].count(True) == 1
    assert results[6]["moisture_pm"] == 152 and results[7]["outlier"] is True
    assert all(bodies.check("evt", "sample", r) is None for r in results)
    try:
        _parse(SCRIPT.frame(9))
        raise AssertionError("a corrupt line parsed")
    except labline.LabError as exc:
        assert exc.reason == "bad_checksum"


class _Hal:
    def __init__(self) -> None:
        self.logged: list[Any] = []

    def log(self, *parts: Any) -> None:
        self.logged.append(parts)

    async def sleep_ms(self, ms: int) -> None:
        await asyncio.sleep(ms / 1000)


async def _until(cond: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def test_lab_emulator_resends_to_a_reconnecting_driver_stored_once() -> None:
    stored: list[dict[str, Any]] = []

    def emit(kind: str, body: dict[str, Any]) -> int:
        assert bodies.check("evt", kind, body) is None
        stored.append(body)
        return len(stored)

    async def main() -> tuple[LabDriver, LabAnalyzerServer]:
        server = LabAnalyzerServer(resend=3)
        port = await server.start()
        d = LabDriver(  # type: ignore[no-untyped-call]
            {"type": "lab", "source": f"tcp:127.0.0.1:{port}"}, emit, _Hal())
        task = asyncio.create_task(d.run())  # type: ignore[no-untyped-call]
        try:
            await _until(lambda: server.clients == 1)
            await server.run(SCRIPT, 10, speed=0)
            await _until(lambda: d.counts["lab_ok"] + d.counts["lab_bad_checksum"] >= 10)
            await server.drop_clients()  # the link drops; the driver opens it again
            await _until(lambda: server.connections == 2 and server.clients == 1)
            await _until(lambda: d.counts["duplicates"] >= 2)  # S-8 again, S-10 again
            await server.run(SCRIPT, 2, speed=0, first=11)
            await _until(lambda: d.counts["samples"] >= 11)
        finally:
            task.cancel()
            await server.close()
        return d, server

    d, _server = asyncio.run(main())
    ids = [b["sample_id"] for b in stored]
    # sample 9's line was corrupt (counted, never stored); the re-sent 8, 9, 10 after the
    # reconnect: 8 and 10 are duplicates, 9 is bad again
    assert ids == [f"S-{n:05d}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12)]
    assert d.counts["duplicates"] == 2 and d.counts["lab_bad_checksum"] == 2
    assert stored[4]["findings"] == [["Ambrosia artemisiifolia", 3, 1000]]


def test_lab_emulator_cli_help_has_an_example() -> None:
    r = CliRunner().invoke(app, ["emulate", "lab", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "Example: portwatch emulate lab" in r.output
