"""edge.net.mqtt against a scripted broker on 127.0.0.1: the faults Mosquitto never makes.

Runs under pytest and under MicroPython (tests/mpy_runner.py): plain functions, each
driving its own ``asyncio.run``. The fake broker answers CONNECT, SUBSCRIBE, PUBLISH
and PINGREQ by script and records every packet, so a test can refuse a subscription,
withhold a PUBACK, send QoS 2, send malformed bytes, drop the link or stay silent.
Its packets are built and parsed here, independently of the client's encoders.
"""

import asyncio

from edge.net.mqtt import ConnectionLost, ConnectRefused, MQTTClient, MQTTError, MQTTTimeout
from shared_support import serve_on_free_port

CONNACK_OK = b"\x20\x02\x00\x00"


def _rl(n):
    """MQTT remaining length: 7 bits a byte, low first, high bit = more follows."""
    out = bytearray()
    while True:
        out.append(n & 127 | (128 if n > 127 else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _publish(topic, payload, qos=0, pid=0, retain=False):
    t = topic.encode()
    body = bytes((len(t) >> 8, len(t) & 255)) + t
    if qos:
        body += bytes((pid >> 8, pid & 255))
    body += payload
    return bytes((0x30 | qos << 1 | (1 if retain else 0),)) + _rl(len(body)) + body


async def _read_packet(r):
    first = (await r.readexactly(1))[0]
    size = shift = 0
    while True:
        b = (await r.readexactly(1))[0]
        size |= (b & 127) << shift
        shift += 7
        if b < 128:
            break
    return first, (await r.readexactly(size) if size else b"")


class FakeBroker:
    """Scripted broker; ``packets`` holds (first byte, body) of every packet after CONNECT."""

    def __init__(self, connack=CONNACK_OK, puback=True, pingresp=True, deny=None):
        self.connack = connack
        self.puback = puback
        self.pingresp = pingresp
        self.deny = deny
        self.packets = []
        self.connects = 0
        self.w = None
        self.server = None
        self.port = 0

    async def start(self):
        self.server, self.port = await serve_on_free_port(self._serve, "fake broker")
        return self

    async def _serve(self, r, w):
        self.w = w
        try:
            await _read_packet(r)  # CONNECT
            self.connects += 1
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
        elif kind == 0x30 and first & 0x06 and self.puback:
            tlen = (body[0] << 8) | body[1]
            await self.send(bytes((0x40, 2, body[2 + tlen], body[3 + tlen])))
        elif first == 0xC0 and self.pingresp:
            await self.send(b"\xd0\x00")

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()

    async def drop(self):
        """Close the current connection (FIN), as a broker restart would."""
        self.w.close()
        await self.w.wait_closed()  # MicroPython closes the socket only here

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


async def _fails(exc_type, aw):
    """Await ``aw``; return the ``exc_type`` it raised (AssertionError if none)."""
    try:
        await aw
    except exc_type as exc:
        return exc
    raise AssertionError(f"{exc_type.__name__} not raised")


def test_client_publishes_a_payload_given_in_parts_as_one_message():
    async def t(broker):
        c = MQTTClient("c0", "127.0.0.1", broker.port)
        await c.connect()
        parts = (memoryview(b"{json}"), b"\nk1:sig")  # as the uplink sends health
        assert await c.publish("a/b", parts, qos=1) == 1
        await c.publish("a/b", (b"x", b"", b"yz"))
        await _until(lambda: len(broker.packets) == 2)
        assert broker.packets[0] == (0x32, b"\x00\x03a/b\x00\x01{json}\nk1:sig")
        assert broker.packets[1] == (0x30, b"\x00\x03a/bxyz")
        c.close()

    _run(t)


def test_client_subscribe_granted_and_refused():
    async def t(broker):
        c = MQTTClient("c1", "127.0.0.1", broker.port)
        await c.connect()
        assert await c.subscribe("ok/topic", 1) == 1
        assert await c.subscribe("ok/zero", 0) == 0
        exc = await _fails(MQTTError, c.subscribe("denied/topic", 1))
        assert "denied/topic" in str(exc) and "refused" in str(exc) and "ACL" in str(exc)
        assert c.connected  # a refused filter does not end the session
        assert await c.subscribe("ok/again", 1) == 1  # and its window slot was freed
        c.close()

    _run(t, deny="denied/topic")


def test_client_missing_puback_times_out_and_frees_slot():
    async def t(broker):
        c = MQTTClient("c2", "127.0.0.1", broker.port, max_inflight=2)
        await c.connect()
        exc = await _fails(MQTTTimeout, c.publish("a/b", b"x", qos=1, timeout=0.2))
        assert "no ack of 1 within 0.2 s" in str(exc)
        assert c.stats["timeouts"] == 1 and c.connected
        # both slots free again: two more go out at once, a third finds the window full
        assert await c.publish("a/b", b"y", qos=1, wait=False, timeout=0.2) == 2
        assert await c.publish("a/b", b"z", qos=1, wait=False, timeout=0.2) == 3
        await _fails(MQTTTimeout, c.publish("a/b", b"w", qos=1, wait=False, timeout=0.1))
        c.close()

    _run(t, puback=False)


def test_client_full_window_times_out_when_nobody_waits_for_acks():
    async def t(broker):
        c = MQTTClient("c3", "127.0.0.1", broker.port, max_inflight=2)
        await c.connect()
        p1 = await c.publish("a/b", b"1", qos=1, wait=False)
        p2 = await c.publish("a/b", b"2", qos=1, wait=False)
        assert (p1, p2) == (1, 2)
        exc = await _fails(MQTTTimeout, c.publish("a/b", b"3", qos=1, wait=False, timeout=0.2))
        assert "free slot" in str(exc)
        assert await c.wait_ack(p2) == 0  # acks are matched by id, in any order
        assert await c.wait_ack(p1) == 0
        assert await c.publish("a/b", b"3", qos=1) == 3
        exc = await _fails(MQTTError, c.wait_ack(p1))
        assert "not in flight" in str(exc)  # a consumed id is not accepted twice
        assert [body[-1:] for first, body in broker.packets] == [b"1", b"2", b"3"]
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
    got = []

    async def t(broker):
        c = MQTTClient("c5", "127.0.0.1", broker.port, on_message=lambda *m: got.append(m))
        await c.connect()
        await broker.send(_publish("x/y", b"q2", qos=2, pid=9))
        await _until(lambda: not c.connected)
        assert c.stats["links_lost"] == 1 and "bad packet 0x34" in c.last_error
        assert got == [] and broker.packets == []  # neither delivered nor acknowledged
        await _fails(ConnectionLost, c.publish("a/b", b"x"))
        await _fails(ValueError, c.publish("a/b", b"x", qos=2))  # nor sent with QoS 2

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
        await broker.send(_publish("x/3", b"", qos=1, pid=6))
        await _until(lambda: len(got) == 2 and len(broker.packets) == 2)
        assert got == [("x/2", b"fine", True), ("x/3", b"", False)]
        assert c.stats["callback_errors"] == 1 and c.connected
        # the failed one was still acknowledged
        assert broker.packets == [(0x40, b"\x00\x05"), (0x40, b"\x00\x06")]
        c.close()

    _run(t)


def test_client_without_callback_acks_and_counts_messages():
    async def t(broker):
        c = MQTTClient("c7", "127.0.0.1", broker.port)
        await c.connect()
        await broker.send(_publish("q/t", b"0", qos=1, pid=1))
        await broker.send(_publish("q/t", b"1", qos=1, pid=2))
        await _until(lambda: len(broker.packets) == 2 and c.stats["callback_errors"] == 2)
        assert broker.packets == [(0x40, b"\x00\x01"), (0x40, b"\x00\x02")]
        assert c.stats["callback_errors"] == 2 and c.connected
        c.close()

    _run(t)


def test_client_oversized_publish_is_skipped_acked_and_counted():
    got = []

    async def t(broker):
        c = MQTTClient("c8", "127.0.0.1", broker.port, max_payload=100,
                       on_message=lambda topic, payload, retained: got.append((topic, payload)))
        await c.connect()
        await broker.send(_publish("big", bytes(1000), qos=1, pid=77))
        await broker.send(_publish("small", bytes(range(100)), qos=0))
        await _until(lambda: got and broker.packets)
        assert got == [("small", bytes(range(100)))]
        assert c.stats["dropped_oversize"] == 1 and c.connected
        assert broker.packets == [(0x40, b"\x00\x4d")]  # PUBACK for packet 77
        c.close()

    _run(t)


def test_client_reads_three_byte_remaining_length_and_drops_five():
    got = []

    async def t(broker):
        c = MQTTClient("c9", "127.0.0.1", broker.port, max_payload=20000,
                       on_message=lambda topic, payload, retained: got.append(payload))
        await c.connect()
        big = bytes(range(256)) * 78  # 19,968 bytes: remaining length 16,384+ takes 3 bytes
        await broker.send(_publish("t", big, qos=0))
        await _until(lambda: got)
        assert got == [big] and c.connected
        await broker.send(b"\x30\xff\xff\xff\xff\x01")  # a fifth length byte
        await _until(lambda: not c.connected)
        assert "bad packet 0x30" in c.last_error

    _run(t)


def test_client_unexpected_packet_type_drops_the_link():
    async def t(broker):
        c = MQTTClient("c10", "127.0.0.1", broker.port)
        await c.connect()
        await broker.send(b"\x50\x02\x00\x01")  # PUBREC: this client never sends QoS 2
        await _until(lambda: not c.connected)
        assert "bad packet 0x50" in c.last_error and c.stats["links_lost"] == 1

    _run(t)


def test_client_connack_refused_codes_carry_code_and_reason():
    reasons = {1: "bad protocol version", 2: "client id rejected", 3: "server unavailable",
               4: "bad user or password", 5: "not authorized", 6: "?"}
    for code in reasons:

        async def t(broker, code=code):
            c = MQTTClient("c11", "127.0.0.1", broker.port)
            exc = await _fails(ConnectRefused, c.connect())
            assert exc.code == code and str(exc) == "CONNACK refused: " + reasons[code]
            assert not c.connected and c.last_error == str(exc)

        _run(t, connack=bytes((0x20, 2, 0, code)))


def test_client_malformed_connack_is_an_mqtterror():
    async def t(broker):
        c = MQTTClient("c12", "127.0.0.1", broker.port)
        exc = await _fails(MQTTError, c.connect())
        assert not isinstance(exc, ConnectRefused) and "bad packet 0x20" in str(exc)
        assert not c.connected

    _run(t, connack=b"\x20\x02\x02\x00")  # reserved flag bit set


def test_client_missing_connack_times_out():
    async def t(broker):
        c = MQTTClient("c13", "127.0.0.1", broker.port, connect_timeout=0.3)
        exc = await _fails(MQTTTimeout, c.connect())
        assert "no CONNACK within 0.3 s" in str(exc)
        assert not c.connected and c.stats["timeouts"] == 1

    _run(t, connack=None)


def test_client_connection_refused_is_connection_lost():
    async def t(broker):
        await broker.close()  # nobody listens on the port any more
        c = MQTTClient("c14", "127.0.0.1", broker.port)
        exc = await _fails(ConnectionLost, c.connect())
        assert str(exc) == "connection refused (ECONNREFUSED) to 127.0.0.1:%d" % broker.port

    _run(t)


def test_client_pings_when_idle_and_drops_link_without_pingresp():
    async def t(broker):
        c = MQTTClient("c15", "127.0.0.1", broker.port, keepalive=1)
        await c.connect()
        await _until(lambda: 0xC0 in broker.kinds(), 2000)  # PINGREQ after ~0.5 s idle
        await _until(lambda: not c.connected, 3000)  # nothing back for 1.5 s: dead
        assert "nothing from the broker" in c.last_error
        assert c.stats["pings"] >= 1 and c.stats["links_lost"] == 1
        assert c.stats["timeouts"] == 1

    _run(t, pingresp=False)


def test_client_keepalive_pings_answered_keep_the_link():
    async def t(broker):
        c = MQTTClient("c16", "127.0.0.1", broker.port, keepalive=1)
        await c.connect()
        await _until(lambda: broker.kinds().count(0xC0) >= 4, 4000)  # 2 s and more
        assert c.connected and c.stats["links_lost"] == 0
        c.close()

    _run(t)


def test_client_lost_link_fails_waiters_and_reconnect_starts_a_fresh_window():
    async def t(broker):
        c = MQTTClient("c17", "127.0.0.1", broker.port, max_inflight=2)
        await c.connect()
        p1 = await c.publish("a/b", b"1", qos=1, wait=False)
        p2 = await c.publish("a/b", b"2", qos=1, wait=False)
        waiter = asyncio.create_task(c.wait_ack(p1))
        await _until(lambda: len(broker.packets) == 2)
        await broker.drop()
        await _fails(ConnectionLost, waiter)  # woken by the EOF, not by a timeout
        assert not c.connected and c.stats["links_lost"] == 1
        await _fails(ConnectionLost, c.publish("a/b", b"x", qos=1))
        broker.puback = True
        await c.connect()
        assert broker.connects == 2
        # p2 never went through wait_ack, yet the new link has both slots free
        assert await c.publish("a/b", b"3", qos=1, timeout=1) == 4
        assert await c.publish("a/b", b"4", qos=1, wait=False, timeout=0.5) == 5
        await c.publish("a/b", b"5", qos=1, wait=False, timeout=0.5)
        await _fails(MQTTError, c.wait_ack(p2))  # an id of the old link is gone
        c.close()

    _run(t, puback=False)


def test_client_disconnect_sends_disconnect_packet():
    async def t(broker):
        c = MQTTClient("c18", "127.0.0.1", broker.port)
        await c.connect()
        await c.publish("a/b", b"x")
        await c.disconnect()
        await _until(lambda: 0xE0 in broker.kinds())
        assert broker.kinds() == [0x30, 0xE0] and not c.connected
        assert c.last_error == "close()" and c.stats["links_lost"] == 0

    _run(t)
