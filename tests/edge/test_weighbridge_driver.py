"""Weighbridge driver with a scripted indicator and outbox; runs under pytest and MicroPython.

The Modbus master is replaced by a script of replies that also records the barrier coil
writes (the real master is tested against pymodbus in hil_tests); the register map, the
decoder and the detector are the real ones. One timeline records what the driver stored
and what it did to the barrier, so the order of the two is checked.
"""

import asyncio
import json

from edge.drivers.weighbridge import WeighbridgeDriver
from edge.net.modbus import ModbusException, ModbusTimeout
from protocols import registermap
from shared_support import make_tmpdir, read_file, rmtree, write_file


class FakeHal:
    def __init__(self):
        self.t = 1764072000000

    def now_ms(self):
        self.t += 100
        return self.t

    def ticks_ms(self):
        return self.t

    def ticks_diff(self, a, b):
        return a - b


class Sink:
    """The driver's ``emit`` and the barrier's timeline. ``refuse``: the outbox refuses
    (None) every event, or only the kinds listed."""

    def __init__(self):
        self.timeline = []  # ("stored" | "refused", kind, body) and ("barrier", on)
        self.refuse = ()
        self.seq = 0

    def emit(self, kind, body):
        if self.refuse is True or kind in self.refuse:
            self.timeline.append(("refused", kind, body))
            return None
        self.seq += 1
        self.timeline.append(("stored", kind, body))
        return self.seq

    def stored(self, kind):
        return [e[2] for e in self.timeline if e[0] == "stored" and e[1] == kind]

    def alarms(self, outcome="stored"):
        return [e[2]["alarm"] for e in self.timeline if e[0] == outcome and e[1] == "alarm"]

    def barrier(self):
        return [e[1] for e in self.timeline if e[0] == "barrier"]


class ScriptedMaster:
    """Each read returns the next item: a register list, or raises it if an exception.
    Coil writes go to the sink's timeline; ``coil_errors`` of them fail first."""

    def __init__(self, script, sink):
        self.script = list(script)
        self.sink = sink
        self.coils = []  # (address, on) of every write that succeeded
        self.coil_errors = 0

    async def read_holding(self, addr, count):
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def write_coil(self, addr, on):
        if self.coil_errors:
            self.coil_errors -= 1
            raise ModbusTimeout("no reply")
        self.coils.append((addr, on))
        self.sink.timeline.append(("barrier", on))


def regs(gross, stable=True, plate="辽B12345"):
    m = registermap.load_named("portwatch-sim")
    return registermap.encode(m, {"gross_kg": gross, "tare_kg": 15000, "net_kg": gross - 15000,
                                  "status": {"stable": stable}, "plate": plate})


def make(script, data_dir=None, sink=None, hal=None):
    sink = sink or Sink()
    drv = WeighbridgeDriver({"map": "portwatch-sim", "host": "127.0.0.1", "port": 1,
                             "stable_s": 0.3}, sink.emit, hal or FakeHal(), data_dir)
    drv.master = ScriptedMaster(script, sink)
    return sink, drv


def polls(drv, n):
    async def go():
        for _ in range(n):
            await drv.poll_once()
    asyncio.run(go())


def truck(n_on, gross=45240, plate="辽B12345"):
    return [regs(gross, plate=plate)] * n_on + [regs(0, plate="")]


def test_driver_weighs_a_stable_truck_once_and_opens_only_after_storing_it():
    sink, drv = make([regs(0, plate="")] + truck(8))
    polls(drv, 10)
    [weighing] = sink.stored("weighing")
    assert weighing["gross_kg"] == 45240 and weighing["plate"] == "辽B12345"
    kinds = [e[0] if e[0] == "barrier" else e[1] for e in sink.timeline]
    # shut at boot, opened after the weighing is stored, shut when the deck is empty
    assert kinds == ["barrier", "weighing", "barrier", "barrier"], sink.timeline
    assert sink.barrier() == [False, True, False]
    assert drv.master.coils[0] == (0, False)  # the map's barrier coil
    body = {}
    drv.add_health(body)
    assert (body["barrier"], body["barrier_errors"], body["deck"]) == (False, 0, "empty")


def test_driver_refused_weighing_keeps_the_barrier_shut_and_says_why():
    sink, drv = make(truck(8) + truck(8, 30000, "辽B54321"))
    sink.refuse = ("weighing", "alarm")  # a full outbox: nothing kept in RAM
    polls(drv, 9)
    assert sink.stored("weighing") == [] and sink.alarms("refused") == ["weighing_not_stored"]
    refused = next(e[2] for e in sink.timeline if e[0] == "refused" and e[1] == "alarm")
    assert refused["state"] == "raised"
    assert refused["detail"]["gross_kg"] == 45240 and refused["detail"]["plate"] == "辽B12345"
    assert True not in sink.barrier()
    sink.refuse = ()  # room again: the next vehicle is weighed and let out
    polls(drv, 9)
    assert [w["plate"] for w in sink.stored("weighing")] == ["辽B54321"]
    assert sink.barrier() == [False, True, False]
    cleared = [e[2] for e in sink.timeline if e[0] == "stored" and e[1] == "alarm"]
    assert cleared == [{"alarm": "weighing_not_stored", "state": "cleared"}]


def test_driver_alarm_says_why_when_only_the_weighing_is_refused():
    sink, drv = make(truck(8) + truck(8, 30000, "辽B54321"))
    sink.refuse = ("weighing",)
    polls(drv, 9)
    assert sink.alarms() == ["weighing_not_stored"] and sink.barrier() == [False]
    sink.refuse = ()
    polls(drv, 9)
    states = [e[2]["state"] for e in sink.timeline if e[0] == "stored" and e[1] == "alarm"]
    assert states == ["raised", "cleared"]


def test_driver_counts_faults_and_raises_unreachable_after_three():
    script = [ModbusException(6), ModbusTimeout("t"), ModbusException(4), regs(0)]
    sink, drv = make(script)
    polls(drv, 4)
    body = {}
    drv.add_health(body)
    assert (body["modbus_exceptions"], body["modbus_timeouts"], body["modbus_ok"]) == (2, 1, 1)
    assert sink.alarms() == ["indicator_unreachable", "indicator_unreachable"]
    assert [e[2]["state"] for e in sink.timeline if e[0] == "stored"] == ["raised", "cleared"]


def test_driver_failed_barrier_write_is_counted_and_written_again():
    sink, drv = make(truck(8))
    drv.master.coil_errors = 2  # the boot write and its first retry time out
    polls(drv, 9)
    assert drv.counts["barrier_errors"] == 2
    assert sink.barrier() == [False, True, False]


def test_driver_without_a_barrier_coil_writes_none_and_still_alarms():
    sink, drv = make(truck(8))
    drv.coil = None  # a map without "coils": the site's barrier is not the agent's
    sink.refuse = ("weighing",)
    polls(drv, 9)
    assert drv.master.coils == [] and sink.alarms() == ["weighing_not_stored"]


def test_driver_restores_a_weighed_vehicle_after_a_power_cut():
    tmp = make_tmpdir("deck")
    try:
        hal = FakeHal()
        sink, drv = make([regs(45240)] * 6, tmp, hal=hal)
        polls(drv, 6)
        assert len(sink.stored("weighing")) == 1 and sink.barrier() == [False, True]
        # power cut; the same truck still on the deck, then it leaves
        sink2, drv2 = make(truck(6), tmp, hal=hal)
        assert drv2.detector.state == "weighed"
        polls(drv2, 7)
        assert sink2.stored("weighing") == [] and sink2.alarms() == []  # no left_unweighed
        assert sink2.barrier() == [True, False]  # it had been let out before the cut
    finally:
        rmtree(tmp)


def test_driver_refused_visit_stays_refused_across_a_reboot():
    tmp = make_tmpdir("deck")
    try:
        hal = FakeHal()
        sink, drv = make([regs(45240)] * 6, tmp, hal=hal)
        sink.refuse = ("weighing",)
        polls(drv, 6)
        assert sink.alarms() == ["weighing_not_stored"]
        sink2, drv2 = make(truck(8) + truck(8, 30000, "辽B54321"), tmp, hal=hal)  # room again
        polls(drv2, 9)
        # not weighed again for this visit: its barrier stays shut until it has left
        assert sink2.stored("weighing") == [] and sink2.barrier() == [False]
        assert sink2.alarms() == []
        polls(drv2, 9)  # the next vehicle is stored: the alarm raised before the cut clears
        assert [w["plate"] for w in sink2.stored("weighing")] == ["辽B54321"]
        assert sink2.alarms() == ["weighing_not_stored"]
    finally:
        rmtree(tmp)


def test_driver_writes_the_deck_state_only_when_it_changes():
    tmp = make_tmpdir("deck")
    try:
        _, drv = make([regs(45240)] * 12 + [regs(0, plate="")], tmp)
        polls(drv, 6)
        state = json.loads(read_file(tmp + "/deck"))
        assert state["deck"]["seq"] == 1 and state["refused"] == 0
        write_file(tmp + "/deck", b"sentinel")
        polls(drv, 6)  # the same weighed truck: nothing to write
        assert read_file(tmp + "/deck") == b"sentinel"
        polls(drv, 1)  # it left
        assert json.loads(read_file(tmp + "/deck"))["deck"]["phase"] == "empty"
    finally:
        rmtree(tmp)


def test_driver_starts_empty_on_a_damaged_deck_file_and_reads_a_leftover_tmp():
    tmp = make_tmpdir("deck")
    try:
        hal = FakeHal()
        _, drv = make([regs(45240)] * 6, tmp, hal=hal)
        polls(drv, 6)
        good = read_file(tmp + "/deck")
        for damaged in (b"", good[:len(good) // 2], b"[1, 2]", b'{"deck": 7}'):
            write_file(tmp + "/deck", damaged)
            drv2 = make([], tmp, hal=hal)[1]
            assert drv2.detector.state == "empty", damaged
        write_file(tmp + "/deck.tmp", good)  # a cut in a FAT replace left only the tmp
        import os
        os.remove(tmp + "/deck")
        drv3 = make([], tmp, hal=hal)[1]
        assert drv3.detector.state == "weighed"
    finally:
        rmtree(tmp)


def test_driver_drops_a_reading_that_came_back_after_a_stall_so_the_gap_shows():
    class StallingMaster(ScriptedMaster):
        async def read_holding(self, addr, count):
            item = await ScriptedMaster.read_holding(self, addr, count)
            if self.script and self.script[0] == "stall":
                self.script.pop(0)
                hal.t += 5000  # frozen after the request went out: a 5 s old reply
            return item

    hal = FakeHal()
    sink, drv = make([], hal=hal)
    # truck 1 weighed; the agent freezes mid-exchange while truck 1 leaves and truck 2
    # drives on (plates differ); the reply it then takes is truck 1's, 5 s old
    drv.master = StallingMaster(truck(8)[:-1] + [regs(45240), "stall"]
                                + [regs(52000, plate="辽B77777")] * 8, sink)
    polls(drv, 8 + 1 + 8)
    assert drv.counts["late_readings"] == 1
    assert [w["plate"] for w in sink.stored("weighing")] == ["辽B12345", "辽B77777"]
    # the gap was seen, a new vehicle found: no weight_changed (the registers here have no
    # heartbeat, so 5 s without one is an indicator_frozen)
    assert "weight_changed" not in sink.alarms(), sink.alarms()
