"""Weighbridge driver with a scripted indicator and outbox; runs under pytest and MicroPython.

The Modbus master is replaced by a script of replies (the real one is tested against
pymodbus in hil_tests); the register map and decoder are the real ones.
"""

import asyncio

from edge.drivers.weighbridge import UNSTORED_MAX, WeighbridgeDriver
from edge.net.modbus import ModbusException, ModbusTimeout
from protocols import registermap


class FakeHal:
    def __init__(self):
        self.t = 1764072000000

    def now_ms(self):
        self.t += 100
        return self.t


class Sink:
    """The driver's ``emit``: records events, or refuses them as a full outbox does (0)."""

    def __init__(self):
        self.events = []
        self.refuse = False

    def emit(self, kind, body):
        if self.refuse:
            return 0
        self.events.append((kind, body))
        return len(self.events)


class ScriptedMaster:
    """Each read returns the next item: a register list, or raises it if an exception."""

    def __init__(self, script):
        self.script = list(script)

    async def read_holding(self, addr, count):
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def regs(gross, stable=True, plate="辽B12345"):
    m = registermap.load_named("portwatch-sim")
    return registermap.encode(m, {"gross_kg": gross, "tare_kg": 15000, "net_kg": gross - 15000,
                                  "status": {"stable": stable}, "plate": plate})


def make(script):
    sink = Sink()
    drv = WeighbridgeDriver({"map": "portwatch-sim", "host": "127.0.0.1", "port": 1,
                             "stable_s": 0.3}, sink.emit, FakeHal())
    drv.master = ScriptedMaster(script)
    return sink, drv


def polls(drv, n):
    async def go():
        for _ in range(n):
            await drv.poll_once()
    asyncio.run(go())


def test_driver_weighs_a_stable_truck_once():
    sink, drv = make([regs(45240)] * 8 + [regs(0)])
    polls(drv, 9)
    weighings = [b for k, b in sink.events if k == "weighing"]
    assert len(weighings) == 1
    assert weighings[0]["gross_kg"] == 45240 and weighings[0]["plate"] == "辽B12345"


def test_driver_counts_faults_and_raises_unreachable_after_three():
    script = [ModbusException(6), ModbusTimeout("t"), ModbusException(4), regs(0)]
    sink, drv = make(script)
    polls(drv, 4)
    body = {}
    drv.add_health(body)
    assert (body["modbus_exceptions"], body["modbus_timeouts"], body["modbus_ok"]) == (2, 1, 1)
    alarms = [(b["alarm"], b["state"]) for k, b in sink.events if k == "alarm"]
    assert alarms == [("indicator_unreachable", "raised"), ("indicator_unreachable", "cleared")]


def test_driver_keeps_refused_events_and_stores_them_in_order_later():
    sink, drv = make([regs(30000 + 20 * (i // 6)) if i % 6 < 5 else regs(0)
                       for i in range(36)])
    sink.refuse = True
    polls(drv, 18)  # three trucks weighed while the outbox refuses
    assert sink.events == [] and len(drv.unstored) == 3
    sink.refuse = False
    polls(drv, 18)
    grosses = [b["gross_kg"] for k, b in sink.events if k == "weighing"]
    assert grosses == [30000, 30020, 30040, 30060, 30080, 30100]
    assert drv.unstored == []


def test_driver_bounds_the_refused_queue_and_counts_drops():
    sink, drv = make([])
    sink.refuse = True
    for i in range(UNSTORED_MAX + 3):
        drv._emit("alarm", {"alarm": "x%d" % i, "state": "raised"})
    assert len(drv.unstored) == UNSTORED_MAX
    assert drv.counts["events_dropped"] == 3
    assert drv.unstored[0][1]["alarm"] == "x3"
