"""edge.net.mqtt against a scripted broker on 127.0.0.1: the faults Mosquitto never makes.

Runs under pytest and under MicroPython (tests/mpy_runner.py): plain functions, each
driving its own ``asyncio.run``. The fake broker answers CONNECT, SUBSCRIBE, PUBLISH
and PINGREQ by script and records every packet, so a test can refuse a subscription,
withhold a PUBACK, send QoS 2 or stay silent.
"""

import asyncio
import os

from edge.net import mqtt_codec as codec
from edge.net.mqtt import ConnectionLost, ConnectRefused, MQTTClient, MQTTError, MQTTTimeout

CONNACK_OK = b"\x20\x02\x00\x00"


async def _read_packet(r):
    first = (await r.readexactly(1))[0]
    rl = bytearray(4)
    for i in range(4):
        rl[i] = (await r.readexactly(1))[0]
        if not rl[i] & 0x80:
            break
    size = codec.decode_remaining_length(rl)[0]
    return first, (await r.readexactly(size) if size else b"")


def _publish(topic, payload, qos=0, pid=0, retain=False):
    topic = topic.encode()
    buf = bytearray(codec.publish_header_size(topic, qos))
    n = codec.publish_header_into(buf, topic, len(payload), qos, retain, False, pid)
    return bytes(buf[:n]) + payload


class FakeBroker:
    """One-connection scripted broker; ``packets`` holds (first byte, body) after CONNECT."""

    def __init__(self, connack=CONNACK_OK, puback=True, pingresp=True, deny=None):
        self.connack = connack
        self.puback = puback
        self.pingresp = pingresp
        self.deny = deny
        self.packets = []
        self.w = None
        self.server = None
        self.port = 0

    async def start(self):
        for _ in range(20):  # MicroPython's Server cannot tell its port: try random ones
            self.port = 20000 + (os.urandom(2)[0] << 8 | os.urandom(1)[0]) % 30000
            try:
                self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
                return self
            except OSError:
                continue
        raise OSError("no free port for the fake broker")

    async def _serve(self, r, w):
        self.w = w
        try:
            await _read_packet(r)  # CONNECT
            if self.connack:
                await self.send(self.connack)
            while True:
                first, body = await _read_packet(r)
                self.packets.append((first, body))
                await self._answer(first, body)
        except (EOFError, OSError):
            pass

    async def _answer(self, first, body):
        kind = first & 0xF0
        if kind == 0x80:  # SUBSCRIBE: one filter
            tlen = (body[2] << 8) | body[3]
            topic = bytes(body[4 : 4 + tlen]).decode()
            code = 0x80 if topic == self.deny else body[-1]
            await self.send(bytes((0x90, 3, body[0], body[1], code)))
        elif kind == codec.PUBLISH and first & 0x06 and self.puback:
            tlen = (body[0] << 8) | body[1]
            await self.send(bytes((0x40, 2, body[2 + tlen], body[3 + tlen])))
        elif first == 0xC0 and self.pingresp:
            await self.send(b"\xd0\x00")

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    def kinds(self):
        return [first for first, _ in self.packets]

    async def close(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _until(cond, timeout_ms=3000):
    """Wait for ``cond()`` to be true, checking every 10 ms (AssertionError past timeout)."""
    for _ in range(timeout_ms // 10):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout_ms} ms")


def _run(test, **broker_opts):
    async def main():
        broker = await FakeBroker(**broker_opts).start()
        try:
            await test(broker)
        finally:
            await broker.close()

    asyncio.run(main())


def _raises(exc_type, exc):
    assert isinstance(exc, exc_type), repr(exc)


def test_client_subscribe_refused_raises_mqtterror():
    async def t(broker):
        c = MQTTClient("c1", "127.0.0.1", broker.port)
        await c.connect()
        assert await c.subscribe("ok/topic", 1) == 1
        try:
            await c.subscribe("denied/topic", 1)
            raise AssertionError("no error")
        except MQTTError as exc:
            assert "denied/topic" in str(exc) and "ACL" in str(exc)
        assert c.connected  # a refused filter does not end the session
        c.close()

    _run(t, deny="denied/topic")


def test_client_missing_puback_times_out_and_frees_slot():
    async def t(broker):
        c = MQTTClient("c2", "127.0.0.1", broker.port, max_inflight=2)
        await c.connect()
        try:
            await c.publish("a/b", b"x", qos=1, timeout=0.2)
            raise AssertionError("no timeout")
        except MQTTTimeout as exc:
            assert "PUBACK" in str(exc)
        assert c.inflight() == 0 and c.stats["timeouts"] == 1 and c.connected
        c.close()

    _run(t, puback=False)


def test_client_full_window_times_out_when_nobody_waits_for_acks():
    async def t(broker):
        c = MQTTClient("c3", "127.0.0.1", broker.port, max_inflight=2)
        await c.connect()
        p1 = await c.publish("a/b", b"1", qos=1, wait=False)
        p2 = await c.publish("a/b", b"2", qos=1, wait=False)
        assert (p1, p2, c.inflight()) == (1, 2, 2)
        try:
            await c.publish("a/b", b"3", qos=1, wait=False, timeout=0.2)
            raise AssertionError("window not bounded")
        except MQTTTimeout as exc:
            assert "window full" in str(exc)
        await c.wait_ack(p2)  # acks are matched by id, in any order
        await c.wait_ack(p1)
        assert c.inflight() == 0
        assert await c.publish("a/b", b"3", qos=1) == 3
        try:
            await c.wait_ack(p1)
            raise AssertionError("consumed id accepted twice")
        except MQTTError as exc:
            assert "not in flight" in str(exc)
        c.close()

    _run(t)


def test_client_packet_ids_wrap_from_65535_to_1():
    async def t(broker):
        c = MQTTClient("c4", "127.0.0.1", broker.port)
        await c.connect()
        c._pid = 65534  # white-box: reach the wrap without 65,534 publishes
        ids = []
        for _ in range(3):  # (no await inside comprehensions: MicroPython lacks it)
            ids.append(await c.publish("a/b", b"x", qos=1))
        assert ids == [65535, 1, 2]
        sent = [(body[5] << 8) | body[6] for first, body in broker.packets if first == 0x32]
        assert sent == [65535, 1, 2]  # on the wire too (topic "a/b" is 3 bytes)
        c.close()

    _run(t)


def test_client_qos2_from_broker_drops_the_link():
    async def t(broker):
        c = MQTTClient("c5", "127.0.0.1", broker.port)
        await c.connect()
        await broker.send(_publish("x/y", b"q2", qos=2, pid=9))
        try:
            await c.get_message(timeout=3)
            raise AssertionError("QoS 2 accepted")
        except ConnectionLost:
            pass
        assert not c.connected and c.stats["links_lost"] == 1
        assert "QoS 2" in c.last_error
        try:
            await c.publish("a/b", b"x")
            raise AssertionError("publish on a dead link")
        except ConnectionLost:
            pass

    _run(t)


def test_client_callback_error_is_counted_and_link_survives():
    got = []

    def handler(topic, payload, retained):
        if payload == b"boom":
            raise ValueError("handler bug")
        got.append((topic, payload, retained))

    async def t(broker):
        c = MQTTClient("c6", "127.0.0.1", broker.port, on_message=handler)
        await c.connect()
        await broker.send(_publish("x/1", b"boom", qos=1, pid=5))
        await broker.send(_publish("x/2", b"fine", qos=0, retain=True))
        await _until(lambda: got)
        assert got == [("x/2", b"fine", True)]
        assert c.stats["callback_errors"] == 1 and c.connected
        assert (0x40, b"\x00\x05") in broker.packets  # the failed one was still acknowledged
        c.close()

    _run(t)


def test_client_full_queue_drops_newest_and_counts():
    async def t(broker):
        c = MQTTClient("c7", "127.0.0.1", broker.port, queue_len=3)
        await c.connect()
        for i in range(5):
            await broker.send(_publish("q/t", b"%d" % i, qos=1, pid=i + 1))
        await _until(lambda: len(broker.packets) == 5)  # all five acknowledged
        assert c.stats["dropped_incoming"] == 2
        got = []
        for _ in range(3):
            got.append((await c.get_message(timeout=1))[1])
        assert got == [b"0", b"1", b"2"]
        try:
            await c.get_message(timeout=0.1)
            raise AssertionError("queue not empty")
        except MQTTTimeout:
            pass
        c.close()

    _run(t)


def test_client_oversized_publish_is_skipped_acked_and_counted():
    async def t(broker):
        c = MQTTClient("c8", "127.0.0.1", broker.port, max_payload=100)
        await c.connect()
        await broker.send(_publish("big", bytes(1000), qos=1, pid=77))
        await broker.send(_publish("small", bytes(100), qos=0))
        topic, payload, _ = await c.get_message(timeout=2)
        assert (topic, len(payload)) == ("small", 100)
        assert c.stats["dropped_oversize"] == 1 and c.connected
        assert broker.packets == [(0x40, b"\x00\x4d")]  # PUBACK for packet 77
        c.close()

    _run(t)


def test_client_connack_refused_code_2():
    async def t(broker):
        c = MQTTClient("c9", "127.0.0.1", broker.port)
        try:
            await c.connect()
            raise AssertionError("refusal not raised")
        except ConnectRefused as exc:
            assert exc.code == 2 and "identifier rejected" in str(exc)
        assert not c.connected

    _run(t, connack=b"\x20\x02\x00\x02")


def test_client_missing_connack_times_out():
    async def t(broker):
        c = MQTTClient("c10", "127.0.0.1", broker.port, connect_timeout=0.3)
        try:
            await c.connect()
            raise AssertionError("no timeout")
        except MQTTTimeout as exc:
            _raises(MQTTError, exc)
            assert "CONNACK" in str(exc)
        assert not c.connected and c.stats["timeouts"] == 1

    _run(t, connack=None)


def test_client_pings_when_idle_and_drops_link_without_pingresp():
    async def t(broker):
        c = MQTTClient("c11", "127.0.0.1", broker.port, keepalive=1)
        await c.connect()
        await _until(lambda: 0xC0 in broker.kinds(), 2000)  # PINGREQ after ~0.5 s idle
        await _until(lambda: not c.connected, 3000)  # nothing back for 1.5 s: dead
        assert "nothing from the broker" in c.last_error
        assert c.stats["pings"] >= 1 and c.stats["links_lost"] == 1

    _run(t, pingresp=False)


def test_client_disconnect_sends_disconnect_packet():
    async def t(broker):
        c = MQTTClient("c12", "127.0.0.1", broker.port)
        await c.connect()
        await c.publish("a/b", b"x")
        await c.disconnect()
        await _until(lambda: 0xE0 in broker.kinds())
        assert broker.kinds() == [0x30, 0xE0] and not c.connected

    _run(t)
