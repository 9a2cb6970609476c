"""Lab analyzer driver (edge/drivers/lab.py): each result stored once as a ``sample``
event, bad lines counted, re-sent results not stored again (also after a reboot: the ids
on flash), a refusing outbox, and its TCP source. Runs under pytest and MicroPython.

The outbox is a recording ``emit`` (the agent's real one is tested in test_agent.py and
the HIL test); the parser, the line splitter, the flash slot and the TCP stream are real.
"""

import asyncio

from edge.drivers.lab import LabDriver
from protocols import bodies, labline
from shared_support import make_tmpdir, rmtree, serve_on_free_port


def res(sid, findings=(), moisture_pm=135, minute=10):
    return labline.build(sid, "2026-12-01T00:%02d:05Z" % minute, moisture_pm, "wet", 118, 9,
                         784, "CAL-1", False, list(findings))


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

    def ids(self):
        return [b["sample_id"] for k, b in self.events if k == "sample"]


class Hal:
    def __init__(self):
        self.logged = []

    def log(self, *parts):
        self.logged.append(parts)

    async def sleep_ms(self, ms):
        await asyncio.sleep(ms / 1000)


def _stream(lines):
    return ("\r\n".join(lines) + "\r\n").encode()


def test_lab_driver_stores_each_result_once_in_any_chunking():
    sink = Sink()
    d = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal())
    data = _stream([res("S-1"), res("S-2", [["Avena sterilis", 2, 500]]), res("S-1")])
    for i in range(0, len(data), 7):
        d.feed(data[i:i + 7])
    assert sink.ids() == ["S-1", "S-2"]
    assert sink.events[1][1]["findings"] == [["Avena sterilis", 2, 500]]
    assert d.counts["lab_ok"] == 3 and d.counts["duplicates"] == 1
    assert d.counts["samples"] == 2


def test_lab_driver_counts_bad_lines_and_goes_on():
    sink = Sink()
    d = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal())
    good = res("S-9")
    bad = good[:-2] + ("00" if good[-2:] != "00" else "01")
    d.feed(_stream([bad, "STATUS READY", "RES,broken", "x" * 600, good]))
    h = {}
    d.add_health(h)
    assert (h["lab_bad_checksum"], h["lab_unsupported"], h["lab_malformed"],
            h["lab_too_long"]) == (1, 1, 1, 1)
    assert sink.ids() == ["S-9"]


def test_lab_driver_remembers_sample_ids_across_a_reboot():
    tmp = make_tmpdir("lab")
    try:
        sink = Sink()
        d = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal(), tmp)
        d.feed(_stream([res("S-%d" % i) for i in range(20)]))
        again = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal(), tmp)
        # the analyzer re-sends its last results after the reboot: not stored twice
        again.feed(_stream([res("S-18"), res("S-19"), res("S-20")]))
        assert sink.ids() == ["S-%d" % i for i in range(21)]
        assert again.counts["duplicates"] == 2
    finally:
        rmtree(tmp)


def test_lab_driver_offers_a_refused_result_again():
    sink = Sink()
    d = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:1"}, sink.emit, Hal())
    sink.refuse = True
    d.feed(_stream([res("S-1")]))
    assert sink.ids() == [] and d.counts["refused"] == 1
    sink.refuse = False
    d.feed(_stream([res("S-2")]))
    assert sink.ids() == ["S-1", "S-2"] and d.pending is None


def test_lab_driver_reads_a_tcp_stream_and_reopens_it_after_it_closes():
    data = _stream([res("S-%d" % i) for i in range(5)])

    async def serve(reader, writer):
        writer.write(data)
        await writer.drain()
        writer.close()  # the analyzer goes away and re-sends the same on the next link
        await writer.wait_closed()

    async def main():
        server, port = await serve_on_free_port(serve, "lab analyzer")
        sink = Sink()
        d = LabDriver({"type": "lab", "source": "tcp:127.0.0.1:%d" % port}, sink.emit, Hal())
        task = asyncio.create_task(d.run())
        for _ in range(500):
            if d.counts["io_errors"] >= 2 and d.counts["duplicates"] >= 5:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        server.close()
        return d, sink

    d, sink = asyncio.run(main())
    assert sink.ids() == ["S-%d" % i for i in range(5)]
    assert d.counts["duplicates"] >= 5 and d.counts["io_errors"] >= 2
