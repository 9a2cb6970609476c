"""Rail reader driver (edge/drivers/rail.py): one ``passage`` per train, unreadable tags
kept, bad lines counted, a refusing outbox, its TCP source; runs under pytest and
MicroPython. The outbox is a recording ``emit`` that checks each body against
protocols/bodies.py; the line protocol, the tag codec and the TCP stream are real.
"""

import asyncio
import json

from edge.drivers.rail import RailDriver
from protocols import aeiline, bodies, s918
from shared_support import serve_on_free_port

T0 = 1764550000000


class Parts:
    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)


def as_dict(train):
    """The body a ``Train`` writes, parsed: what the controller gets."""
    w = Parts()
    train.write_json(w)
    return json.loads("".join(w.parts))


class Sink:
    def __init__(self):
        self.events = []
        self.refuse = False

    def emit(self, kind, body):
        if self.refuse:
            return None
        body = as_dict(body)
        err = bodies.check("evt", kind, body)
        assert err is None, err
        self.events.append((kind, body))
        return len(self.events)


class Hal:
    def __init__(self):
        self.logged = []
        self.ms = 0

    def now_ms(self):
        return self.ms

    def log(self, *parts):
        self.logged.append(parts)

    async def sleep_ms(self, ms):
        await asyncio.sleep(ms / 1000)


def train(train_id, n, bad=(), loco=True, first=100001):
    """The reader's lines of a train: a locomotive then ``n`` cars, those in ``bad`` with
    a corrupted tag; car i weighs 80000 + i kg."""
    lines = [aeiline.frame("TRN,%s,%d,O,152,%d" % (train_id, T0, 4 * n + (6 if loco else 0)))]
    seq = 0
    if loco:
        seq += 1
        tag = s918.encode("CR", 3001, axles=6, group=s918.GROUP_LOCOMOTIVE)
        lines.append(aeiline.frame("TAG,%d,%s,1," % (seq, tag)))
    for i in range(n):
        seq += 1
        tag = s918.encode("DLCX", first + i, side=i % 2, length_dm=150)
        if i in bad:
            tag = s918.corrupt(tag)
        lines.append(aeiline.frame("TAG,%d,%s,%d,%d" % (seq, tag, 1 + i % 2, 80000 + i)))
    lines.append(aeiline.frame("END,%s,%d,%d" % (train_id, T0 + 60000, seq)))
    return b"".join(lines)


def _driver():
    sink = Sink()
    return RailDriver({"type": "rail", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal()), sink


def test_rail_driver_forty_cars_one_passage_in_any_chunking():
    data = train("T1", 40, bad=(7,))
    for size in (1, 7, 64, len(data)):
        d, sink = _driver()
        for i in range(0, len(data), size):
            d.feed(data[i:i + size])
        assert len(sink.events) == 1, size
        kind, body = sink.events[0]
        assert kind == "passage" and body["direction"] == "out" and body["train"] == "T1"
        assert body["axles"] == 166 and body["speed_dkmh"] == 152
        assert body["started_ts"] == T0 and body["ended_ts"] == T0 + 60000
        assert body["locos"] == [[1, "CR", 3001]]
        cars = body["cars"]
        assert len(cars) == 40 and [c[0] for c in cars] == list(range(2, 42))
        assert cars[0] == [2, "DLCX", 100001, 0, 150, 4, 80000]
        assert cars[7][1:7] == [None, None, None, None, None, 80007] and len(cars[7][7]) == 32
        assert d.counts["unreadable"] == 1 and d.counts["cars"] == 40


def test_rail_driver_bad_lines_counted_and_goes_on():
    d, sink = _driver()
    good = train("T2", 3)
    d.feed(b"garbage\r\nTAG,1,00,1,*00\r\n" + b"X" * 300 + b"\r\n")
    d.feed(aeiline.frame("TAG,1,%s,1," % s918.encode("DLCX", 1)))  # outside a train
    d.feed(aeiline.frame("BOO,1"))
    d.feed(good)
    c = d.counts
    assert c["aei_malformed"] == 1 and c["aei_bad_checksum"] == 1 and c["aei_too_long"] == 1
    assert c["orphan_lines"] == 1 and c["aei_unsupported"] == 1
    assert len(sink.events) == 1 and len(sink.events[0][1]["cars"]) == 3


def test_rail_driver_lost_end_stores_the_open_train():
    d, sink = _driver()
    first = train("T3", 2)
    d.feed(first[:first.rfind(b"END")])  # its END never comes
    d.feed(train("T4", 2))
    assert [b["train"] for _, b in sink.events] == ["T3", "T4"]
    assert d.counts["trains_cut"] == 1 and len(sink.events[0][1]["cars"]) == 2


def test_rail_driver_refused_train_offered_again():
    d, sink = _driver()
    sink.refuse = True
    d.feed(train("T5", 2))
    assert d.counts["refused"] == 1 and sink.events == []
    sink.refuse = False
    d.feed(train("T6", 2))
    assert [b["train"] for _, b in sink.events] == ["T5", "T6"]
    assert d.counts["trains"] == 2 and d.pending is None


def test_rail_driver_refused_train_keeps_its_cars_while_the_next_is_read():
    d, sink = _driver()
    sink.refuse = True
    d.feed(train("T7", 3, first=200001))
    d.feed(train("T8", 2, first=300001))  # refused too: T7 is lost, T8 waits
    assert d.counts["refused"] == 2 and d.counts["lost"] == 1
    d.feed(train("T10", 4, first=400001, bad=(1,)))  # read into the spare, not over T8
    sink.refuse = False
    d.feed(train("T11", 1, first=500001))
    got = {b["train"]: [c[2] for c in b["cars"]] for _, b in sink.events}
    # T10 refused while T8 waited: the newer train is kept, T8 counted lost
    assert got == {"T10": [400001, None, 400003, 400004], "T11": [500001]}
    assert d.counts["lost"] == 2 and d.pending is None


def test_rail_driver_train_over_max_cars_keeps_the_first_and_counts_the_rest():
    from edge.drivers.rail import MAX_CARS

    d, sink = _driver()
    d.feed(train("T12", MAX_CARS + 3, loco=False))
    [(_, body)] = sink.events
    assert [c[2] for c in body["cars"]] == [100001 + i for i in range(MAX_CARS)]
    assert d.counts["cars_over"] == 3


def test_rail_driver_refused_train_offered_again_while_the_reader_is_quiet():
    d, sink = _driver()
    sink.refuse = True
    d.feed(train("T9", 2))
    assert d.counts["refused"] == 1 and d.pending is not None
    d.hal.ms += 500
    d._retry_pending()  # not yet: its first retry is 1 s on
    assert sink.events == []
    sink.refuse = False
    d.hal.ms += 600
    d._retry_pending()
    assert [b["train"] for _, b in sink.events] == ["T9"]
    assert d.counts["trains"] == 1 and d.pending is None


def test_rail_driver_end_count_differs_counted():
    d, sink = _driver()
    lines = [ln for ln in train("T7", 3).split(b"\r\n") if ln and not ln.startswith(b"END")]
    d.feed(b"\r\n".join(lines) + b"\r\n" + aeiline.frame("END,T7,%d,6" % (T0 + 60000)))
    assert d.counts["tags_lost"] == 2 and len(sink.events) == 1


def test_rail_driver_reads_a_tcp_stream():
    data = train("T8", 5)

    async def serve(reader, writer):
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def main():
        server, port = await serve_on_free_port(serve, "rail reader")
        sink = Sink()
        d = RailDriver({"type": "rail", "source": "tcp:127.0.0.1:%d" % port}, sink.emit, Hal())
        task = asyncio.create_task(d.run())
        for _ in range(500):
            if sink.events and d.counts["io_errors"] >= 1:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        server.close()
        return d, sink

    d, sink = asyncio.run(main())
    assert len(sink.events) >= 1 and sink.events[0][1]["train"] == "T8"
    assert len(sink.events[0][1]["cars"]) == 5 and d.counts["io_errors"] >= 1
