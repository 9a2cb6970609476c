"""A GPS tracker agent under MicroPython reports batched positions through Mosquitto.

Real parts: Mosquitto (TLS), the controller process and its SQLite file, the firmware
under ``micropython -X heapsize=96K`` with the tracker driver reading NMEA over TCP from a
minimal line server in this test (the receiver's UART is the part that cannot run here;
the TCP stream stands in for it, ``$PPWIO`` sentences for the ignition, power and case
GPIO inputs). The stream is fully known, so every fix the controller stores is compared
with the one the test sent, field by field.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from controller.storage.positions import fixes_between
from protocols import nmea
from tools.procs import wait_until
from tools.rig import Rig

START_S = (int(time.time()) // 60 - 90) * 60  # fix time: an hour and a half ago, whole minute
LAT0, LON0 = 38915473, 121652078  # the grain port's out-gate, Dalian
KNOTS = "21.6"  # 40.0 km/h: moving
DKMH = int(21.6 * nmea.KMH_PER_KNOT * 10 + 0.5)


class LineServer:
    """The GNSS receiver's stand-in: one TCP port; the agent connects as a client, the test
    writes lines to whichever connection is current."""

    def __init__(self) -> None:
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.conn: socket.socket | None = None
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.conn = conn
            self.connected.set()

    def send(self, lines: list[str]) -> None:
        assert self.connected.wait(30), "the agent never connected to the NMEA source"
        assert self.conn is not None
        self.conn.sendall(("\r\n".join(lines) + "\r\n").encode())

    def close(self) -> None:
        self.srv.close()
        if self.conn is not None:
            self.conn.close()


def _coord(e6: int, width: int, pos: str, neg: str) -> str:
    a = abs(e6)
    m_e5 = (a % 1_000_000) * 6  # minutes x 1e5: the parser gives e6 back exactly
    hemi = pos if e6 >= 0 else neg
    return f"{a // 1_000_000:0{width}d}{m_e5 // 100_000:02d}.{m_e5 % 100_000:05d},{hemi}"


def _epoch(t_s: int, i: int) -> tuple[list[str], list[int]]:
    """RMC + GGA of fix ``i`` (fix time ``t_s``) driving north-east, and the fix the
    controller must store for it."""
    lat, lon = LAT0 + 100 * i, LON0 + 70 * i
    g = time.gmtime(t_s)
    hms = f"{g.tm_hour:02d}{g.tm_min:02d}{g.tm_sec:02d}.00"
    date = f"{g.tm_mday:02d}{g.tm_mon:02d}{g.tm_year % 100:02d}"
    pos = f"{_coord(lat, 2, 'N', 'S')},{_coord(lon, 3, 'E', 'W')}"
    lines = [nmea.sentence(f"GNRMC,{hms},A,{pos},{KNOTS},45.0,{date},,,A"),
             nmea.sentence(f"GNGGA,{hms},{pos},1,11,0.9,12.6,M,-9.1,M,,")]
    return lines, [t_s * 1000, lat, lon, DKMH, 45, 11, 9]


def _drive(first: int, count: int, *, bad_every: int = 0) -> tuple[list[str], list[list[int]]]:
    """``count`` one-second epochs from epoch ``first``; a corrupted copy of an RMC after
    every ``bad_every``-th epoch (extra lines: no epoch is lost to them). Returns the lines
    and the fixes the driver keeps (one every 5 s of fix time while moving)."""
    lines: list[str] = []
    kept: list[list[int]] = []
    for i in range(first, first + count):
        epoch, fix = _epoch(START_S + i, i)
        lines += epoch
        if i % 5 == 0:
            kept.append(fix)
        if bad_every and i % bad_every == bad_every - 1:
            rmc = epoch[0]
            lines.append(rmc[:-2] + ("00" if rmc[-2:] != "00" else "01"))
    return lines, kept


def _ppwio(ign: int, ext: int, tamper: int) -> str:
    return nmea.sentence(f"PPWIO,{ign},{ext},{tamper}")


def _events(rig: Rig, device_id: str, kind: str) -> list[tuple[int, dict[str, Any]]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT seq, payload FROM messages WHERE device_id=? AND kind=? "
                            "ORDER BY seq", (device_id, kind)).fetchall()
    return [(seq, json.loads(payload.split(b"\n")[0])["body"]) for seq, payload in rows]


def _stored_fixes(rig: Rig, device_id: str) -> list[list[int]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, "
                            "hdop_x10 FROM positions WHERE device_id=? ORDER BY seq, idx",
                            (device_id,)).fetchall()
    return [list(r) for r in rows]


def _query(rig: Rig, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(rig.db_path) as conn:
        return conn.execute(sql, args).fetchall()


def _health(rig: Rig, device_id: str) -> dict[str, Any]:
    return rig.device(device_id)["health"] or {}


@pytest.fixture
def source() -> Iterator[LineServer]:
    s = LineServer()
    yield s
    s.close()


def _start(rig: Rig, source: LineServer, device_id: str = "trk-1") -> None:
    rig.add_tracker(device_id, source=f"tcp:127.0.0.1:{source.port}")
    rig.start_agent(device_id)
    wait_until(lambda: rig.device(device_id)["status"] == "online", 30,
               what=f"{device_id} online")


@pytest.mark.timeout(240)
def test_tracker_agent_positions_arrive_batched_exact_bad_lines_counted_alarms_raised(
        rig: Rig, source: LineServer) -> None:
    _start(rig, source)
    lines, want = _drive(0, 600, bad_every=80)  # 10 min of fix time, 120 fixes kept
    source.send([_ppwio(1, 1, 0), *lines])
    wait_until(lambda: len(_stored_fixes(rig, "trk-1")) >= len(want), 60,
               what=f"{len(want)} fixes stored")
    # power cut, case opened, both back: four alarms, in order
    source.send([_ppwio(1, 0, 0), _ppwio(1, 0, 1), _ppwio(1, 1, 1), _ppwio(1, 1, 0)])
    wait_until(lambda: len(_events(rig, "trk-1", "alarm")) >= 4, 30, what="4 alarms stored")

    positions = _events(rig, "trk-1", "positions")
    assert _stored_fixes(rig, "trk-1") == want  # every kept fix, exact, in order, once
    assert [len(b["fixes"]) for _, b in positions] == [10] * 12
    assert len(want) / len(positions) >= 8  # messages vs fixes: >= ~8x fewer (here 10x)
    assert all(b["ign"] is True and b["ext_power"] is True and b["tamper"] is False
               and b["src"] == "nmea" for _, b in positions)
    alarms = [(b["alarm"], b["state"]) for _, b in _events(rig, "trk-1", "alarm")]
    assert alarms == [("ext_power_lost", "raised"), ("case_tamper", "raised"),
                      ("ext_power_lost", "cleared"), ("case_tamper", "cleared")]
    # the projection and the trips engineer's reader agree with the stream
    with sqlite3.connect(rig.db_path) as conn:
        assert fixes_between(conn, "trk-1", want[0][0], want[-1][0]) == [
            (f[0], f[1], f[2]) for f in want]
    # every custody event is in the ledger as a device message, once
    seqs = [seq for seq, in _query(rig, "SELECT seq FROM messages WHERE device_id=? "
                                   "ORDER BY seq", "trk-1")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 16
    assert _query(rig, "SELECT count(*) FROM ledger_entries WHERE kind='device_message' "
                  "AND subkind='evt' AND device_id=?", "trk-1") == [(16,)]
    # the bad sentences are counted in health, and nothing was lost to them
    wait_until(lambda: _health(rig, "trk-1").get("nmea_ok", 0) >= 1205, 20,
               what="a health sample after the last sentence")
    h = _health(rig, "trk-1")
    assert h["nmea_bad_checksum"] == 7 and h["nmea_ok"] == 1200 + 5
    assert h["fixes"] == 600 and h["fixes_kept"] == 120 and h["batches"] == 12
    assert h["io_errors"] == 0 and h["fixes_lost"] == 0
    assert h["mem_errors"] == 0 and h["mem_free"] > 0  # inside the 96 KiB heap throughout
    print("tracker steady heap free:", h["mem_free"])


@pytest.mark.timeout(300)
def test_tracker_agent_positions_kept_through_a_broker_outage_arrive_in_order(
        rig: Rig, source: LineServer) -> None:
    _start(rig, source)
    before, want1 = _drive(0, 100)  # 20 kept: 2 events while the link is up
    source.send([_ppwio(1, 1, 0), *before])
    wait_until(lambda: len(_stored_fixes(rig, "trk-1")) >= 20, 60, what="first 20 fixes")
    agent = rig.agents["trk-1"]

    rig.broker.stop()  # a coverage gap: nothing leaves the truck
    during, want2 = _drive(100, 300)  # 60 kept: 6 events stored in the outbox only
    source.send([*during, _ppwio(0, 1, 0)])  # ignition off: nothing more to batch
    wait_until(lambda: "positions seq 8" in agent.log_text(), 60,
               what="the outage's 6 positions events in the agent's outbox")
    assert len(_stored_fixes(rig, "trk-1")) == 20  # none reached the controller

    rig.broker.start()
    want = want1 + want2
    wait_until(lambda: len(_stored_fixes(rig, "trk-1")) >= len(want), 90,
               what="the backlog delivered after the outage")
    assert _stored_fixes(rig, "trk-1") == want  # in order, none lost, none twice
    received = [r for r, in _query(rig, "SELECT received_ms FROM messages WHERE device_id=? "
                                   "AND kind='positions' ORDER BY seq", "trk-1")]
    assert received == sorted(received)  # sent in seq order after the outage
    wait_until(lambda: rig.device("trk-1")["committed_seq"] == 8, 30, what="committed 8")
    assert rig.device("trk-1")["missing"] == []
    wait_until(lambda: _health(rig, "trk-1").get("backlog") == 0, 30, what="backlog 0")
    h = _health(rig, "trk-1")
    assert h["mem_errors"] == 0 and h["fixes_lost"] == 0 and h["batches_refused"] == 0
    assert h["ign"] is False


# edge/FAILURES.md, Tracker: the lowest measured, 12.3 KB (14.8 KB once protocols.nmea no
# longer built a list per sentence), minus 2 KB; the same commit varies by up to 3 KB
HEAP_FLOOR = 10 * 1024


@pytest.mark.timeout(300)
def test_tracker_agent_heap_stays_above_its_floor_streaming_and_draining(
        rig: Rig, source: LineServer) -> None:
    """The tracker's free heap at 96 KiB, from its health samples: streaming at 20x (20
    epochs of fix time per second) with the link up, then draining the outbox a broker
    outage filled (edge/FAILURES.md, Tracker: the figures come from this test with -s)."""
    _start(rig, source)
    samples: dict[str, list[int]] = {"streaming": [], "draining": []}
    phase = "streaming"
    stop = threading.Event()

    def sample() -> None:
        last = None
        while not stop.is_set():
            h = _health(rig, "trk-1")
            if h.get("uptime_s") != last and "mem_free" in h:
                last = h["uptime_s"]
                samples[phase].append(h["mem_free"])
            stop.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    source.send([_ppwio(1, 1, 0)])
    for block in range(40):  # 800 s of fix time over ~40 s: 160 fixes kept, 16 events
        lines, _ = _drive(block * 20, 20)
        source.send(lines)
        stop.wait(1.0)  # the receiver's pace (20x), not a synchronisation
    wait_until(lambda: len(_stored_fixes(rig, "trk-1")) >= 160, 60, what="160 fixes stored")
    rig.broker.stop()
    lines, _ = _drive(800, 2000)  # 400 fixes kept: 40 events wait in the outbox
    source.send(lines)
    wait_until(lambda: "positions seq 56" in rig.agents["trk-1"].log_text(), 120,
               what="40 events in the outbox")
    phase = "draining"
    rig.broker.start()
    wait_until(lambda: len(_stored_fixes(rig, "trk-1")) >= 560, 120, what="560 fixes stored")
    wait_until(lambda: len(samples["draining"]) >= 3, 30, what="3 health samples after")
    stop.set()
    sampler.join(5)
    h = _health(rig, "trk-1")
    st, dr = samples["streaming"], samples["draining"]
    print(f"tracker heap free (B): streaming min {min(st)} max {max(st)} over {len(st)} "
          f"samples; after the outage min {min(dr)} over {len(dr)} samples")
    assert h["mem_errors"] == 0 and h["fixes_lost"] == 0
    assert min(samples["streaming"] + samples["draining"]) >= HEAP_FLOOR
