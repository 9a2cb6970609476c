"""The AEI rail reader emulator: scripted trains as the reader's checksummed lines over a
real TCP socket, read back with protocols.aeiline and protocols.s918."""

from __future__ import annotations

import asyncio

from protocols import aeiline, s918
from tools.emulators.rail_reader import (
    Car,
    RailReaderServer,
    TrainScript,
    manifest_cars,
    passed,
    train_lines,
)


def _decode(lines: list[bytes]) -> list[tuple]:  # type: ignore[type-arg]
    return [aeiline.parse(line.rstrip(b"\r\n")) for line in lines]


def test_rail_emulator_clean_train_lines_decode() -> None:
    cars = manifest_cars(40)
    script = TrainScript("T1", cars, locos=(Car("CR", 3001, axles=6,
                                                group=s918.GROUP_LOCOMOTIVE),))
    parsed = _decode(train_lines(script, 1_764_550_000_000))
    head, tags, end = parsed[0], parsed[1:-1], parsed[-1]
    assert head == ("TRN", "T1", 1_764_550_000_000, "out", 150, 40 * 4 + 6)
    assert end[0] == "END" and end[3] == 41 and end[2] > head[2]
    assert [t[1] for t in tags] == list(range(1, 42))
    numbers = [s918.decode(t[2])["number"] for t in tags[1:]]
    assert numbers == [c.number for c in cars]
    assert [t[4] for t in tags[1:]] == [c.weight_kg for c in cars] and tags[0][4] is None


def test_rail_emulator_faults_applied() -> None:
    cars = manifest_cars(10)
    extra = Car("TTGX", 555)
    script = TrainScript("T2", cars, missing=(2,), extra=(extra,), swap=(5, 6),
                         unreadable=(8,))
    rails = passed(script)
    numbers = [p.car.number for p in rails]
    assert cars[2].number not in numbers and 555 in numbers
    assert numbers.index(cars[6].number) < numbers.index(cars[5].number)
    bad = [p for p in rails if not p.readable]
    assert [p.car.number for p in bad] == [cars[8].number]
    try:
        s918.decode(bad[0].tag_hex)
    except s918.TagError as exc:
        assert exc.reason == "checksum"
    else:
        raise AssertionError("the unreadable car's tag decoded")
    head = _decode(train_lines(script, 0))[0]
    assert head[5] == 10 * 4  # one car missing, one extra: same axle count


def test_rail_emulator_serves_lines_over_tcp() -> None:
    async def go() -> list[bytes]:
        srv = RailReaderServer()
        port = await srv.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(5):
            while srv.clients == 0:
                await asyncio.sleep(0.01)
        sent = await srv.send_train(TrainScript("T3", manifest_cars(3)), 1000)
        got = [await asyncio.wait_for(reader.readline(), 5) for _ in sent]
        writer.close()
        await srv.close()
        assert got == sent and srv.sent_lines == len(sent)
        return got

    lines = asyncio.run(go())
    assert len(lines) == 5


def test_rail_emulator_cli_serves_a_scripted_train() -> None:
    import re
    import socket
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "emulate", "rail", "--cars", "5",
                             "--missing", "1", "--extra", "555555", "--unreadable", "3",
                             "--wait-client-s", "20"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        m = re.search(r"tcp 127\.0\.0\.1:(\d+)", first)
        assert m, first
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s:
            f = s.makefile("rb")
            lines: list[bytes] = []
            while not lines or not lines[-1].startswith(b"END"):
                line = f.readline()
                assert line, lines
                lines.append(line.rstrip(b"\r\n"))
        parsed = [aeiline.parse(x) for x in lines]
        numbers: list[int | None] = []
        for p in parsed[1:-1]:
            try:
                numbers.append(s918.decode(p[2])["number"])
            except s918.TagError:
                numbers.append(None)
        assert numbers == [100001, 555555, 100003, None, 100005], numbers
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
