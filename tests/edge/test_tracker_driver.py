"""GPS tracker driver: fix merging, thinning and batching by fix time, $PPWIO, bad lines, a
refusing outbox, and its TCP source; runs under pytest and MicroPython.

The outbox is a recording ``emit`` (the agent's real one is tested in test_agent.py and
the HIL test); the NMEA parser, line splitter and the TCP stream are the real ones.
Sentences are built here with integer arithmetic and checksummed by ``nmea.sentence``.
"""

import asyncio
import time

from edge.drivers.tracker import MAX_FIXES, TrackerDriver
from protocols import bodies, nmea
from shared_support import make_tmpdir, rmtree, serve_on_free_port

DAY_MS = 1796083200000  # 2026-12-01T00:00:00Z, the date 011226
LAT, LON = 38915473, 121652078  # Dalian grain port


def _coord(e6, deg_digits, pos, neg):
    a = -e6 if e6 < 0 else e6
    m_e5 = (a % 1000000) * 6  # minutes x 1e5, exact: the parser gives e6 back to the unit
    fmt = "%02d%02d.%05d" if deg_digits == 2 else "%03d%02d.%05d"
    return fmt % (a // 1000000, m_e5 // 100000, m_e5 % 100000) + "," + (neg if e6 < 0 else pos)


def _hms(t_s):
    return "%02d%02d%02d.00" % (t_s // 3600 % 24, t_s // 60 % 60, t_s % 60)


def rmc(t_s, lat=LAT, lon=LON, knots="21.6", course="90.0", date="011226", talker="GN"):
    return nmea.sentence("%sRMC,%s,A,%s,%s,%s,%s,%s,,,A" % (
        talker, _hms(t_s), _coord(lat, 2, "N", "S"), _coord(lon, 3, "E", "W"), knots, course,
        date))


def gga(t_s, lat=LAT, lon=LON, sats=12, hdop="0.9", talker="GN"):
    return nmea.sentence("%sGGA,%s,%s,%s,1,%02d,%s,12.6,M,-9.1,M,," % (
        talker, _hms(t_s), _coord(lat, 2, "N", "S"), _coord(lon, 3, "E", "W"), sats, hdop))


def ppwio(ign, ext, tamper):
    return nmea.sentence("PPWIO,%d,%d,%d" % (ign, ext, tamper))


class Sink:
    """The agent's ``emit``: records events; ``refuse`` makes it refuse (None) them."""

    def __init__(self):
        self.events = []
        self.refuse = False

    def emit(self, kind, body):
        if self.refuse:
            return None
        err = bodies.check("evt", kind, body)
        assert err is None, err
        self.events.append((kind, body))
        return len(self.events)

    def positions(self):
        return [b for k, b in self.events if k == "positions"]

    def fixes(self):
        return [f for b in self.positions() for f in b["fixes"]]

    def alarms(self):
        return [(b["alarm"], b["state"]) for k, b in self.events if k == "alarm"]


class Hal:
    def __init__(self, io=None):
        self.logged = []
        self.io = io  # what the board's GPIO inputs read (read_io), or None: no pins

    def ticks_ms(self):
        return time.ticks_ms() if hasattr(time, "ticks_ms") else int(time.time() * 1000)

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b) if hasattr(time, "ticks_diff") else a - b

    def read_io(self, pins):
        assert pins == {"ign": 25, "ext_power": 26, "tamper": 27}
        return self.io

    async def sleep_ms(self, ms):
        await asyncio.sleep(ms / 1000)

    def log(self, *parts):
        self.logged.append(parts)


def make(**cfg):
    sink = Sink()
    d = TrackerDriver(dict(cfg, type="tracker", source="tcp:127.0.0.1:1"), sink.emit, Hal())
    return d, sink


def feed(d, lines):
    d.feed(("\r\n".join(lines) + "\r\n").encode())


def drive(d, first_s, last_s, step_s=1, **kw):
    """RMC + GGA every ``step_s`` seconds of fix time from first_s to last_s inclusive."""
    for t in range(first_s, last_s + 1, step_s):
        feed(d, [rmc(t, **kw), gga(t)])


def test_tracker_merges_gga_and_rmc_of_one_epoch_into_one_fix():
    d, sink = make(batch_fixes=1)
    feed(d, [gga(3600, sats=9, hdop="1.26"), rmc(3600, knots="10.0", course="359.7")])
    feed(d, [rmc(3601, knots="10.0", course="12.4"), gga(3601, sats=7, hdop="0.8")])
    assert sink.fixes()[0] == [DAY_MS + 3600000, LAT, LON, 185, 0, 9, 13]
    # the second epoch, RMC first: merged at its GGA, and not kept (1 s < 5 s while moving)
    assert d.counts["fixes"] == 2 and d.counts["fixes_kept"] == 1
    assert d.counts["nmea_ok"] == 4


def test_tracker_southern_and_western_fixes_are_negative_millionths():
    d, sink = make(batch_fixes=1)
    feed(d, [rmc(60, lat=-33901234, lon=-151209876, talker="GP"),
             gga(60, lat=-33901234, lon=-151209876, talker="GP")])
    assert sink.fixes()[0][1:3] == [-33901234, -151209876]


def test_tracker_rmc_alone_gives_a_fix_when_the_next_epoch_starts():
    d, sink = make(batch_fixes=1)
    feed(d, [rmc(100)])
    assert sink.fixes() == []  # a GGA of the same epoch may still come
    feed(d, [rmc(110)])
    assert [f[0] for f in sink.fixes()] == [DAY_MS + 100000]
    assert sink.fixes()[0][5:] == [0, 0]  # no GGA: no satellites, no HDOP known


def test_tracker_without_a_date_gives_no_fix():
    d, sink = make(batch_fixes=1)
    feed(d, [gga(200), gga(201), gga(202)])
    assert sink.events == [] and d.counts["fixes"] == 0
    assert d.counts["no_fix"] == 2  # the third epoch is still open
    feed(d, ["$GPRMC,,V,,,,,,,,,,N*53", "$GPGGA,,,,,,0,00,99.99,,,,,,*48"])
    assert d.counts["no_fix"] == 4 and sink.events == []


def test_tracker_bad_lines_are_counted_per_reason_and_never_raise():
    d, sink = make(batch_fixes=1)
    good = rmc(300)
    flipped = good[:-2] + ("00" if good[-2:] != "00" else "01")
    lines = [flipped, "no dollar", "$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,"
             "292,00*74", nmea.sentence("GPRMC,300000.00,A,3854.9284,X,12139.1247,E,1,1,011226"
                                        + ",,,A"), "$GPGGA,\x01*00"]
    d.feed(("\r\n".join(lines) + "\r\n").encode())
    d.feed(b"$" + b"A" * 200 + b"\r\n")  # longer than the splitter's buffer
    d.feed(b"\xff\xfe\x00garbage\r\n")
    c = d.counts
    assert c["nmea_bad_checksum"] == 1 and c["nmea_malformed"] == 1
    assert c["nmea_unsupported"] == 1 and c["nmea_bad_field"] == 1 and c["nmea_bad_char"] == 2
    health = {}
    d.add_health(health)
    assert health["nmea_too_long"] == 1 and health["nmea_ok"] == 0
    feed(d, [good, gga(300)])  # and it goes on reading
    assert len(sink.fixes()) == 1


def test_tracker_moving_keeps_a_fix_every_5_s_and_stores_ten_per_event():
    d, sink = make()
    drive(d, 0, 499)  # 500 s at 40 km/h, one epoch a second
    fixes = sink.fixes()
    assert d.counts["fixes"] == 500
    assert len(sink.positions()) == 10 and [len(b["fixes"]) for b in sink.positions()] == [10] * 10
    assert [f[0] - DAY_MS for f in fixes] == list(range(0, 500000, 5000))
    assert all("ign" not in b for b in sink.positions())  # not known yet: not claimed
    assert sink.positions()[0]["src"] == "nmea"


def test_tracker_parked_keeps_a_fix_a_minute_and_the_batch_goes_after_batch_max_s():
    d, sink = make()
    drive(d, 0, 600, knots="0.5")  # 0.9 km/h: parked
    fixes = sink.fixes()
    assert [f[0] - DAY_MS for f in fixes][:4] == [0, 60000, 120000, 180000]
    # a batch goes once its first fix is batch_max_s old: two fixes per event when parked
    assert [len(b["fixes"]) for b in sink.positions()] == [2] * 5
    assert d.counts["fixes_kept"] == 11 and len(d.batch) == 1


def test_tracker_batch_max_s_sends_a_partial_batch_by_fix_time():
    d, sink = make(batch_max_s=20)
    drive(d, 0, 20)
    assert [len(b["fixes"]) for b in sink.positions()] == [5]  # 0, 5, 10, 15, 20 s
    assert d.batch == []


def test_tracker_ignition_change_sends_the_batch_and_keeps_the_next_fix():
    d, sink = make()
    feed(d, [ppwio(1, 1, 0)])
    drive(d, 0, 12)  # kept 0, 5, 10
    assert sink.positions() == []
    feed(d, [ppwio(0, 1, 0)])
    assert len(sink.positions()) == 1
    first = sink.positions()[0]
    assert first["ign"] is True and first["ext_power"] is True and first["tamper"] is False
    assert [f[0] - DAY_MS for f in first["fixes"]] == [0, 5000, 10000]
    drive(d, 13, 13)  # 3 s after the last kept, but the first after the change: kept
    assert [f[0] - DAY_MS for f in d.batch] == [13000]
    assert sink.alarms() == []


def test_tracker_ppwio_power_and_tamper_become_raised_and_cleared_alarms():
    d, sink = make(batch_fixes=1)
    feed(d, [ppwio(1, 1, 0), ppwio(1, 0, 0), ppwio(1, 0, 0), ppwio(1, 0, 1), ppwio(1, 1, 1),
             ppwio(1, 1, 0)])
    assert sink.alarms() == [("ext_power_lost", "raised"), ("case_tamper", "raised"),
                             ("ext_power_lost", "cleared"), ("case_tamper", "cleared")]
    feed(d, [ppwio(0, 0, 0)])
    drive(d, 0, 0)
    last = sink.positions()[-1]
    assert last["ign"] is False and last["ext_power"] is False and last["tamper"] is False


def test_tracker_bad_ppwio_is_counted_and_changes_nothing():
    d, sink = make()
    feed(d, [ppwio(1, 1, 0)])
    good = ppwio(1, 0, 1)
    bad_sum = good[:-2] + ("00" if good[-2:] != "00" else "01")
    feed(d, [bad_sum, nmea.sentence("PPWIO,1,2,0"), nmea.sentence("PPWIO,1,1"),
             "$PPWIO,1,0,1*zz", "$PPWIO,1,0,1"])
    c = d.counts
    assert c["nmea_bad_checksum"] == 1 and c["nmea_bad_field"] == 2 and c["nmea_malformed"] == 2
    assert sink.alarms() == [] and (d.ign, d.ext, d.tamper) == (True, True, False)


def test_tracker_refused_batch_stays_and_is_offered_again_in_order():
    d, sink = make()
    sink.refuse = True
    drive(d, 0, 99)  # 20 kept: refused at 10, offered again at 20
    assert sink.events == [] and d.counts["batches_refused"] == 2 and len(d.batch) == 20
    sink.refuse = False
    drive(d, 100, 149)  # 10 more kept: offered at 30, stored whole
    assert [len(b["fixes"]) for b in sink.positions()] == [30]
    assert [f[0] - DAY_MS for f in sink.fixes()] == list(range(0, 150000, 5000))
    assert d.counts["fixes_lost"] == 0


def test_tracker_refused_for_long_keeps_the_newest_64_fixes_and_counts_the_rest():
    d, sink = make()
    sink.refuse = True
    drive(d, 0, 399)  # 80 kept
    assert len(d.batch) == MAX_FIXES and d.counts["fixes_lost"] == 16
    sink.refuse = False
    drive(d, 400, 404)
    assert len(sink.positions()) == 1 and len(sink.fixes()) == MAX_FIXES
    assert sink.fixes()[-1][0] - DAY_MS == 400000


def test_tracker_fix_time_going_back_is_dropped_and_counted():
    d, sink = make(batch_fixes=1)
    drive(d, 100, 100)
    drive(d, 50, 50)  # a receiver reset that forgot the time
    drive(d, 106, 106)
    assert [f[0] - DAY_MS for f in sink.fixes()] == [100000, 106000]
    assert d.counts["fix_time_back"] == 1


def test_tracker_any_chunking_gives_the_same_events():
    lines = [ppwio(1, 1, 0)] + [s for t in range(0, 120) for s in (rmc(t), gga(t))]
    lines.insert(50, ppwio(1, 0, 0))
    data = ("\r\n".join(lines) + "\r\n").encode()
    want = None
    for size in (1, 7, 64, len(data)):
        d, sink = make()
        for i in range(0, len(data), size):
            d.feed(data[i:i + size])
        got = (sink.events, d.batch)
        assert want is None or got == want
        want = got
    assert want is not None and len(want[0]) == 3  # 2 batches of 10 fixes and one alarm


def test_tracker_reads_a_tcp_stream_and_reopens_it_after_it_closes():
    lines = [ppwio(1, 1, 0)] + [s for t in range(0, 60) for s in (rmc(t), gga(t))]
    data = ("\r\n".join(lines) + "\r\n").encode()

    async def serve(reader, writer):
        writer.write(data[:len(data) // 2])
        await writer.drain()
        writer.write(data[len(data) // 2:])
        await writer.drain()
        writer.close()  # the emulator goes away: the driver counts it and opens again
        await writer.wait_closed()  # (MicroPython closes the socket here, not in close)

    async def main():
        server, port = await serve_on_free_port(serve, "NMEA source")
        sink = Sink()
        d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:%d" % port},
                          sink.emit, Hal())
        task = asyncio.create_task(d.run())
        for _ in range(500):
            if d.counts["io_errors"] >= 1 and d.counts["fix_time_back"] >= 60:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        server.close()
        return d, sink

    d, sink = asyncio.run(main())
    assert d.counts["io_errors"] >= 1
    # the stream was served twice (opened again after the close): the second pass's fixes
    # are not newer than the first's last: dropped, counted
    assert d.counts["fixes"] == 60 and d.counts["fix_time_back"] >= 60
    assert [len(b["fixes"]) for b in sink.positions()] == [10]


async def _run_until(d, done, loops=500):
    task = asyncio.create_task(d.run())
    for _ in range(loops):
        if done():
            break
        await asyncio.sleep(0.01)
    task.cancel()


def test_tracker_board_pins_are_read_once_a_second_while_the_line_streams():
    """A board's GPIO inputs (``pins``): read through the HAL's ``read_io`` (machine.Pin on
    the ESP32, which cannot run here: a stand-in answers) even while data keeps coming."""
    lines = [s for t in range(0, 30) for s in (rmc(t), gga(t))]
    data = ("\r\n".join(lines) + "\r\n").encode()

    async def serve(reader, writer):
        for i in range(0, len(data), 100):  # a steady trickle, never a quiet line
            writer.write(data[i:i + 100])
            await writer.drain()
            await asyncio.sleep(0.02)
        await writer.wait_closed()

    async def main():
        server, port = await serve_on_free_port(serve, "NMEA source")
        sink = Sink()
        d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:%d" % port,
                           "pins": {"ign": 25, "ext_power": 26, "tamper": 27}},
                          sink.emit, Hal(io=(True, False, True)))
        await _run_until(d, lambda: len(sink.alarms()) >= 2)
        server.close()
        return d, sink

    d, sink = asyncio.run(main())
    assert sink.alarms() == [("ext_power_lost", "raised"), ("case_tamper", "raised")], (
        sink.alarms(), d.counts)
    assert d.ign is True


def test_tracker_uart_source_on_the_unix_hal_is_a_counted_io_error():
    from edge.hal import unix

    sink = Sink()
    d = TrackerDriver({"type": "tracker", "source": "uart:2:9600:17:16"}, sink.emit, unix)

    async def main():
        await _run_until(d, lambda: d.counts["io_errors"] >= 1)

    asyncio.run(main())
    assert d.counts["io_errors"] == 1 and sink.events == []


def test_tracker_alarm_state_survives_a_reboot_and_an_ended_condition_is_cleared():
    data = make_tmpdir("trk")
    try:
        sink = Sink()
        d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal(),
                          data)
        feed(d, [ppwio(1, 0, 1)])
        assert sink.alarms() == [("ext_power_lost", "raised"), ("case_tamper", "raised")]
        # reboot: the case is still open, the power came back while the tracker was off
        sink = Sink()
        d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal(),
                          data)
        feed(d, [ppwio(0, 1, 1), ppwio(0, 1, 1)])
        assert sink.alarms() == [("ext_power_lost", "cleared")]
        # and without a state on flash, nothing is assumed raised
        rmtree(data)
        data = make_tmpdir("trk")
        sink = Sink()
        d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal(),
                          data)
        feed(d, [ppwio(0, 1, 0)])
        assert sink.alarms() == []
    finally:
        rmtree(data)
