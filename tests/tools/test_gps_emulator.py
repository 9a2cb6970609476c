"""The GPS emulator: trajectories on the demo site (clean ones stay in their corridor, a
detour leaves it), scripted faults, NMEA that protocols/nmea.py, pynmea2 and the edge
tracker driver all read back exactly, the accelerated clock, and the TCP server read by a
real socket client."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pynmea2
import pytest

from controller.site import current_site
from controller.site.geometry import contains, distance_m, in_corridor, zones_at
from edge.drivers.tracker import TrackerDriver
from protocols import nmea
from tools.gps_emulator import (
    Detour,
    EmulatorError,
    Fix,
    NmeaServer,
    Script,
    Stop,
    TruckPlan,
    Window,
    nmea_lines,
    paced,
    trajectory,
)

SITE = current_site()
START = 1_796_083_200_000  # 2026-12-01 00:00:00 UTC


def _trip(corridor: str = "c-feed-mill", seed: int = 5, **script: object) -> list[Fix]:
    return trajectory(SITE, TruckPlan(corridor, START, seed=seed, script=Script(**script)))


@pytest.mark.parametrize("corridor", ["c-feed-mill", "c-grain-depot"])
def test_trajectory_clean_stays_in_its_corridor(corridor: str) -> None:
    c = SITE.corridors[corridor]
    fixes = _trip(corridor)
    for f in fixes:
        assert in_corridor(c, f.true_lat_e6, f.true_lon_e6), f
        # the reported position may stray by its own noise, never more
        assert in_corridor(c, f.lat_e6, f.lon_e6, margin_m=f.noise_m + 0.5), f
    # noise of a few metres, with some multipath jumps of 20-30 m
    mean = sum(f.noise_m for f in fixes) / len(fixes)
    assert 3.0 <= mean <= 6.0, mean
    assert any(f.noise_m > 20 for f in fixes)
    assert max(f.noise_m for f in fixes) < 50


def test_trajectory_starts_on_the_out_deck_and_parks_in_the_destination() -> None:
    c = SITE.corridors["c-grain-depot"]
    fixes = _trip("c-grain-depot")
    first, last = fixes[0], fixes[-1]
    assert contains(SITE.zones["wb-out"], first.true_lat_e6, first.true_lon_e6)
    assert first.phase == "weighing" and first.speed_dkmh == 0 and first.ign
    assert contains(SITE.zones[c.to_zone], last.true_lat_e6, last.true_lon_e6)
    assert last.phase == "parked" and not last.ign and last.speed_dkmh == 0
    assert all(b.ts_ms - a.ts_ms == 1000 for a, b in itertools.pairwise(fixes))
    minutes = (last.ts_ms - first.ts_ms) / 60_000
    assert 40 <= minutes <= c.max_minutes, minutes  # 53 km


def test_trajectory_speeds_are_realistic() -> None:
    fixes = _trip()
    kmh = [f.speed_dkmh / 10 for f in fixes]
    assert 55 <= max(kmh) <= 80
    for f in fixes:  # inside the port at walking pace for a truck
        kinds = {z.kind for z in zones_at(SITE, f.true_lat_e6, f.true_lon_e6)}
        if "port_area" in kinds:
            assert f.speed_dkmh <= 100, f
    # bounded acceleration and braking (3 m/s^2 = 10.8 km/h per second)
    assert all(abs(b - a) <= 10.8 + 0.1 for a, b in itertools.pairwise(kmh))
    # distance covered matches the speeds: the trip's length within 2 %
    travelled = sum(distance_m((a.true_lat_e6, a.true_lon_e6), (b.true_lat_e6, b.true_lon_e6))
                    for a, b in itertools.pairwise(fixes))
    by_speed = sum(f.speed_dkmh / 36 for f in fixes)
    assert travelled == pytest.approx(by_speed, rel=0.02)


def test_trajectory_same_seed_same_fixes_other_seed_other_noise() -> None:
    assert _trip(seed=9) == _trip(seed=9)
    a, b = _trip(seed=9), _trip(seed=10)
    assert [f.lat_e6 for f in a[:100]] != [f.lat_e6 for f in b[:100]]


def test_trajectory_detour_leaves_the_corridor_and_comes_back() -> None:
    c = SITE.corridors["c-feed-mill"]
    fixes = _trip(detours=(Detour(at_km=10, offset_m=500, length_m=1500, ramp_m=300),))
    out = [f for f in fixes if not in_corridor(c, f.true_lat_e6, f.true_lon_e6)]
    assert len(out) > 60  # over a minute off at road speed
    assert all(10_000 <= f.along_m <= 12_100 for f in out)
    # how far off: from the corridor's centre line at the same distance along it
    centre = {round(f.along_m): (f.true_lat_e6, f.true_lon_e6) for f in _trip()}
    furthest = max(distance_m((f.true_lat_e6, f.true_lon_e6),
                              centre[min(centre, key=lambda a: abs(a - f.along_m))])
                   for f in out)
    assert 400 <= furthest <= 520
    assert all(f.phase == "detour" for f in out)
    with pytest.raises(EmulatorError, match="does not fit"):
        _trip(detours=(Detour(at_km=25, offset_m=500, length_m=1500),))
    after = [f for f in fixes if f.along_m > 12_200]
    assert after and all(in_corridor(c, f.true_lat_e6, f.true_lon_e6) for f in after)


def test_trajectory_unplanned_stop_stands_still_for_its_minutes() -> None:
    fixes = _trip(stops=(Stop(at_km=15, minutes=7, ign_off=True),))
    stopped = [f for f in fixes if f.phase == "stopped"]
    assert len(stopped) == 7 * 60
    assert all(f.speed_dkmh == 0 and f.along_m == pytest.approx(15_000) for f in stopped)
    assert not stopped[60].ign and stopped[0].ign  # engine off after a few seconds
    with pytest.raises(EmulatorError, match="not on corridor"):
        _trip(stops=(Stop(at_km=99, minutes=1),))


def test_trajectory_coverage_gap_flags_fixes_and_leaves_nmea_unchanged() -> None:
    clean = _trip()
    gap = _trip(coverage_gaps=(Window(at_min=10, minutes=3),))
    down = [f for f in gap if not f.link_up]
    assert len(down) == 180
    assert down[0].ts_ms == START + 600_000
    assert list(nmea_lines(gap)) == list(nmea_lines(clean))


def test_trajectory_switched_off_has_no_fixes_and_no_sentences() -> None:
    clean = _trip()
    off = _trip(switched_off=(Window(at_min=5, minutes=4),))
    gone = {f.ts_ms for f in clean} - {f.ts_ms for f in off}
    assert gone == {START + 300_000 + i * 1000 for i in range(240)}
    lines = list(nmea_lines(off))
    times = {nmea.parse(x)["time_ms"] for x in lines if not x.startswith("$PPWIO")}
    day0 = START % 86_400_000
    assert not any(day0 + 300_000 <= t < day0 + 540_000 for t in times)
    # the tracker tells its inputs again as soon as it is back
    back = next(i for i, x in enumerate(lines)
                if not x.startswith("$PPWIO") and nmea.parse(x)["time_ms"] == day0 + 540_000)
    assert lines[back - 1].startswith("$PPWIO,")
    # the rest of the trip is unchanged (noise is drawn whether or not a fix is sent)
    assert [f for f in off if f.ts_ms >= START + 540_000] == [
        f for f in clean if f.ts_ms >= START + 540_000]


def test_trajectory_tamper_and_power_cut_show_in_ppwio() -> None:
    fixes = _trip(tamper_at_min=12, power_cuts=(Window(at_min=20, minutes=2),))
    lines = list(nmea_lines(fixes))
    io = [x for x in lines if x.startswith("$PPWIO,")]
    assert io[0] == nmea.sentence("PPWIO,1,1,0")
    assert nmea.sentence("PPWIO,1,1,1") in io  # case opened
    assert nmea.sentence("PPWIO,1,0,1") in io  # then power cut
    # the change is sent right before the first fix that has it
    i = lines.index(nmea.sentence("PPWIO,1,1,1"))
    first_tampered = next(f for f in fixes if f.tamper)
    assert first_tampered.ts_ms == START + 720_000
    assert nmea.parse(lines[i + 1])["time_ms"] == START % 86_400_000 + 720_000
    assert lines[i - 1].startswith("$GNRMC")  # not a periodic repeat but the change itself
    powered_off = [f for f in fixes if not f.ext_power]
    assert len(powered_off) == 120
    assert lines.count(nmea.sentence("PPWIO,1,1,1")) >= 2  # repeated every 10 fixes


def test_nmea_lines_read_back_exactly_by_protocols_nmea_and_pynmea2() -> None:
    fixes = _trip("c-grain-depot")[:3000:7]
    lines = list(nmea_lines(fixes))
    rows = iter(fixes)
    fix = next(rows)
    for line in lines:
        if line.startswith("$PPWIO"):
            continue
        ours = nmea.parse(line)
        theirs = pynmea2.parse(line, check=True)
        assert (ours["lat_e6"], ours["lon_e6"]) == (fix.lat_e6, fix.lon_e6)
        assert theirs.latitude == pytest.approx(fix.lat_e6 / 1e6, abs=1e-7)
        assert theirs.longitude == pytest.approx(fix.lon_e6 / 1e6, abs=1e-7)
        if ours["sentence"] == "GGA":
            assert ours["satellites"] == fix.sats == int(theirs.num_sats)
            assert round(ours["hdop"] * 10) == fix.hdop_x10
        else:
            assert ours["ts"] == fix.ts_ms
            assert round(ours["speed_kmh"] * 10) == fix.speed_dkmh
            assert theirs.datetime.timestamp() * 1000 == fix.ts_ms
            assert int(ours["course"]) == fix.course_deg
            fix = next(rows, fix)
        assert len(line) <= nmea.MAX_LINE


class _Hal:
    def sleep_ms(self, ms: int) -> None:  # never called when lines are fed directly
        raise AssertionError("not used")


def test_nmea_stream_through_the_edge_tracker_driver_gives_the_trip() -> None:
    """The emulator's stream fed to the real edge driver (CPython; no UART: lines are fed
    directly, which is what the driver does with what its UART gives)."""
    fixes = _trip(tamper_at_min=15)
    events: list[tuple[str, dict[str, object]]] = []

    def emit(kind: str, body: dict[str, object]) -> int:
        events.append((kind, body))
        return len(events)

    drv = TrackerDriver({"source": "tcp:127.0.0.1:1"}, emit, _Hal())
    data = "".join(x + "\r\n" for x in nmea_lines(fixes)).encode()
    for i in range(0, len(data), 97):  # odd chunks, as a socket gives them
        drv.feed(data[i:i + 97])
    drv.close_epoch()
    drv.flush()
    c = drv.counts
    assert c["fixes"] == len(fixes)
    assert c["nmea_ok"] > 2 * len(fixes)
    assert all(c[k] == 0 for k in c if k.startswith("nmea_") and k != "nmea_ok")
    stored = [row for kind, body in events if kind == "positions"
              for row in body["fixes"]]  # type: ignore[attr-defined]
    by_ts = {f.ts_ms: f for f in fixes}
    for row in stored:
        assert row == by_ts[row[0]].row()
    alarms = [body for kind, body in events if kind == "alarm"]
    assert {"alarm": "case_tamper", "state": "raised"} in alarms
    assert events[-1][1]["ign"] is False  # the last batch: parked, engine off


def test_paced_accelerated_clock_releases_fixes_at_their_time() -> None:
    fixes = _trip()[:101]
    speed = 200.0  # 100 s of fix time in 0.5 s

    async def run() -> list[tuple[float, Fix]]:
        out = []
        t0 = time.monotonic()
        async for f in paced(fixes, speed):
            out.append((time.monotonic() - t0, f))
        return out

    got = asyncio.run(run())
    assert [f for _, f in got] == fixes
    for wall, f in got:
        due = (f.ts_ms - fixes[0].ts_ms) / 1000 / speed
        assert wall >= due - 0.005, (wall, due)  # never early
    total = got[-1][0]
    assert 0.495 <= total < 2.0, total
    with pytest.raises(EmulatorError):
        asyncio.run(anext(paced(fixes, 0).__aiter__()))


def _read_lines(data: bytes) -> Iterator[str]:
    for raw in data.split(b"\r\n"):
        if raw:
            yield raw.decode("ascii")


def test_nmea_server_tcp_client_gets_every_sentence_and_silence_when_off() -> None:
    fixes = _trip(switched_off=(Window(at_min=1.5, minutes=1),))[:240]  # 60 s off
    speed = 120.0

    async def run() -> tuple[bytes, list[float]]:
        srv = NmeaServer()
        port = await srv.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.wait_for(_until(lambda: srv.clients == 1), 5)
        task = asyncio.create_task(srv.run(fixes, speed))
        chunks = b""
        arrivals: list[float] = []
        t0 = time.monotonic()
        while not task.done() or not reader.at_eof():
            try:
                chunk = await asyncio.wait_for(reader.read(4096), 0.3)
            except TimeoutError:
                if task.done():
                    break
                continue
            if not chunk:
                break
            chunks += chunk
            arrivals.extend(time.monotonic() - t0 for _ in range(chunk.count(b"$GNRMC")))
        await task
        writer.close()
        await srv.close()
        return chunks, arrivals

    data, arrivals = asyncio.run(run())
    lines = list(_read_lines(data))
    assert lines == list(nmea_lines(fixes))
    # every fix sent; the 60 s switched off pass as 0.5 s of silence on the wire
    assert fixes[90].ts_ms - fixes[89].ts_ms == 61_000
    assert len(arrivals) == len(fixes) == 240
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 0.4


async def _until(cond: object, step: float = 0.01) -> None:
    while not cond():  # type: ignore[operator]
        await asyncio.sleep(step)


def test_nmea_server_pty_carries_the_same_sentences() -> None:
    """The pty stands in for the receiver's UART: a reader opening its name gets the
    stream; with nobody reading, the emulator never blocks (bytes over the pty's buffer are
    dropped and counted)."""
    import os
    import termios
    import tty

    fixes = _trip()[:30]

    async def run() -> tuple[bytes, int]:
        srv = NmeaServer()
        await srv.start(pty=True)
        assert srv.pty_name and srv.pty_name.startswith("/dev/")
        fd = os.open(srv.pty_name, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd, termios.TCSANOW)  # no echo, no line discipline: bytes as sent
        await srv.run(fixes, speed=1000)
        data = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        os.close(fd)
        dropped = srv.pty_dropped_bytes
        await srv.close()
        return data, dropped

    data, dropped = asyncio.run(run())
    assert dropped == 0
    assert list(_read_lines(data)) == list(nmea_lines(fixes))
