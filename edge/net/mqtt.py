"""The firmware's own asyncio MQTT 3.1.1 client (MicroPython 1.2x and CPython 3.11).

Why our own: the MicroPython MQTT libraries on PyPI (micropython-mqtt's mqtt_as,
umqtt) are upip-era source archives that pip cannot install (docs/domain.md, Messaging),
and the agent needs a client whose code and data both fit its 96 KB heap next to
everything else, with bounded RAM, tested against Mosquitto. On the device every
function, class, identifier and string literal of an imported module stays on the
heap (docstrings and comments do not), so this is one module of few functions, with
short error messages and no features the agent does not use.

Failures it survives, and how (defaults in brackets):

- Broker stops or resets the TCP link: the reader sees EOF at once; the link is
  declared dead, ``connected`` turns False and every ``wait_ack()`` (PUBACK, SUBACK)
  and window waiter gets ``ConnectionLost``. Reconnecting is the caller's job.
- Broker frozen or cable pulled (no FIN): a PINGREQ goes out once nothing has been
  sent for keepalive/2 s, and at every check once nothing has been received for
  keepalive/2 s; when nothing at all has come from the broker for 1.5 x keepalive s
  [45 s] the link is declared dead. Checks run every min(1 s, keepalive/4).
- Broker silent during or after the TCP connect: ``MQTTTimeout`` ("no CONNACK within
  5 s") when either step takes over ``connect_timeout`` [5 s]; CONNACK codes 1-5 ->
  ``ConnectRefused`` with ``.code`` and the reason ("CONNACK refused: bad user or
  password"); a refused or failed TCP connect -> ``ConnectionLost`` ("connection refused
  (ECONNREFUSED) to 127.0.0.1:1883": errors are named by edge/explain.py, here and in
  ``last_error``).
- No PUBACK / SUBACK within ``ack_timeout`` [10 s] -> ``MQTTTimeout``; the link stays
  up (the keepalive decides whether it is dead). SUBACK 0x80 -> ``MQTTError``.
- A malformed or unexpected packet from the broker (QoS 2 PUBLISH, remaining length
  over 4 bytes, topic over 256 bytes, any type but PUBLISH/PUBACK/SUBACK/PINGRESP)
  drops the link; ``last_error`` says "bad packet 0x..". A send that fails or is
  cancelled half way drops it too (the byte stream can no longer be trusted).
- A faulty ``on_message`` does not kill the link: counted in
  ``stats["callback_errors"]`` (so is every message when there is no callback).
  Other counters: ``pings``, ``timeouts`` (every MQTTTimeout and dead link),
  ``links_lost``, ``dropped_oversize``; ``last_error`` says why the link went down.
- Power loss: ``close()`` drops the socket without DISCONNECT, so the broker sends
  the will; ``disconnect()`` sends DISCONNECT first, so it does not.

Limits, all allocated once in the constructor: QoS 1 publishes and subscriptions in
flight at most ``max_inflight`` [8] (the next one waits up to its timeout for a free
slot; a slot is freed only by ``wait_ack()``, so every id from ``publish(...,
wait=False)`` must go there; ``connect()`` starts with an empty window). Waiting for an
ack or a free slot looks at the slot table every 10 ms rather than waiting on an
``asyncio.Event`` per slot: the agent then never loads asyncio's event module (1.2 KB of
heap) nor keeps 9 Events (1 KB). Incoming messages go to ``on_message(topic: str,
payload: bytes, retained: bool)``, a plain function called by the reader task after the
PUBACK went out, so it must not block; there is no queue.
A PUBLISH payload over ``max_payload`` [4,096 bytes] is read through in 256-byte
chunks without being kept, acknowledged (so the broker does not redeliver it
forever) and counted in ``stats["dropped_oversize"]``. Topics are not checked for
wildcards (protocols.topics builds ours); strings over 65,535 bytes raise ValueError.

RAM (gc.mem_free on the 64-bit unix port, whose pointers are twice an ESP32's): the
module holds about 7 KB once imported from .mpy, and edge.net.sock about 1.2 KB more,
asyncio's 4 KB not counted (``python -m tools.footprint asyncio edge.net.mqtt``; the
first version, in two modules, held 20 KB). One client with the default limits takes
about 1 KB, more while connected (tasks, socket), and does not grow with traffic
(hil_tests/test_edge_mqtt_client.py). No asyncio streams and no ``asyncio.wait_for``:
a non-blocking socket looked at every 2 ms, with deadlines in ticks (edge/net/sock.py),
so asyncio's stream and funcs modules (2.5 KB of heap) are never loaded.

Not done on purpose: QoS 2, retransmission with DUP after reconnect (the client
never holds a payload; an unacknowledged QoS 1 publish ends in ``ConnectionLost``
and the agent's persistent outbox sends it again), unsubscribe, several filters in
one SUBSCRIBE, a message queue.

TLS: ``tls`` is a context from ``edge.net.sock.context(ca)`` (the site CA pinned; the
broker's certificate must name ``host``), made once and reused by every connect; a
certificate that does not verify ends ``connect()`` in ConnectionLost naming the reason.
It costs 3.1 KB of heap for the context and nothing measurable per connection on the
unix port (mbedTLS's record buffers are outside the GC heap), and a connect takes ~68 ms
instead of ~1 ms (``python -m tools.tls_cost``; README, Firmware heap).
"""

import asyncio
import struct

from edge.explain import explain
from edge.net import sock  # one name here: each costs a slot in this module's dict


class MQTTError(Exception):
    """Root of every error the client raises; alone: refused subscription, bad packet."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with return code ``.code`` (1-5)."""


class MQTTTimeout(MQTTError):
    """No CONNACK, ack or free window slot in time; an established link stays up."""


class ConnectionLost(MQTTError):
    """The link is down, could not be opened, or died while waiting: connect() again."""


# -- packets (pure: no I/O; the byte-exact vectors are in tests/edge/test_mqtt_codec.py)


def _packet(first, head, strs, tail=0, payload_len=0):
    """A zeroed packet buffer: the fixed header, ``head`` bytes for the caller to fill,
    the strings ``strs`` (str or bytes) with their 2-byte lengths, ``tail`` bytes for the
    caller; the remaining length also counts ``payload_len`` bytes sent after the buffer
    (its 256 MB limit is not checked: no device holds such a payload).
    Return (buffer, offset of the head bytes)."""
    n = head + tail
    for i in range(len(strs)):
        s = strs[i]
        if isinstance(s, str):
            s = strs[i] = s.encode()
        if len(s) > 65535:
            raise ValueError("string over 65535 bytes")
        n += 2 + len(s)
    size = n + payload_len
    k = 1  # remaining length: 7 bits a byte, high bit set on all but the last
    while size >> 7 * k:
        k += 1
    buf = bytearray(1 + k + n)
    buf[0] = first
    for i in range(k):
        buf[1 + i] = size >> 7 * i & 127 | (128 if i < k - 1 else 0)
    off = 1 + k + head
    for s in strs:
        struct.pack_into(">H", buf, off, len(s))
        buf[off + 2 : off + 2 + len(s)] = s
        off += 2 + len(s)
    return buf, 1 + k


def connect_packet(client_id, keepalive=30, clean_session=True, user=None, password=None,
                   will=None):
    """CONNECT for MQTT 3.1.1; ``will`` is ``(topic, payload, qos, retain)`` or None."""
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive over 65535 s")
    flags = 2 if clean_session else 0
    strs = [client_id]
    if will:
        strs += will[:2]
        flags |= 4 | will[2] << 3 | (32 if will[3] else 0)
    if user is not None:
        strs.append(user)
        flags |= 128
    if password is not None:
        if user is None:
            raise ValueError("password without user name")
        strs.append(password)
        flags |= 64
    buf, off = _packet(0x10, 10, strs)
    struct.pack_into(">H4sBBH", buf, off, 4, b"MQTT", 4, flags, keepalive)
    return buf


def publish_header(topic, payload_len, qos=0, retain=False, pid=0):
    """A PUBLISH (QoS 0 or 1) up to its payload, which goes on the wire right after it."""
    buf, _ = _packet(0x30 | qos << 1 | (1 if retain else 0), 0, [topic], 2 * qos, payload_len)
    if qos:
        struct.pack_into(">H", buf, len(buf) - 2, pid)
    return buf


def subscribe_packet(pid, topic_filter, qos=1):
    """SUBSCRIBE to one filter with the requested maximum QoS."""
    buf, off = _packet(0x82, 2, [topic_filter], 1)
    struct.pack_into(">H", buf, off, pid)
    buf[-1] = qos
    return buf


# -- the client


class MQTTClient:
    """One MQTT 3.1.1 connection to one broker; see the module docstring for behaviour.

    Window slot ``i`` holds a packet id in ``_pids[i]`` (0: free) and its state in
    ``_st[i]`` (0xFF waiting for the ack, 0xFE link lost, else the ack's return code:
    0 for a PUBACK, the granted QoS or 0x80 for a SUBACK).
    """

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 clean_session=True, will=None, connect_timeout=5, max_payload=4096,
                 ack_timeout=10, max_inflight=8, on_message=None, tls=None):
        self.host = host
        self.port = port
        self.tls = tls  # a context from edge.net.sock.context(ca), or None: clear TCP
        self._pkt = connect_packet(client_id, keepalive, clean_session, user, password, will)
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.max_payload = max_payload
        self.on_message = on_message
        self.connected = False
        self.last_error = None  # why the link went down last, for health reports
        self.stats = {"pings": 0, "timeouts": 0, "links_lost": 0, "dropped_oversize": 0,
                      "callback_errors": 0}
        self._w = None
        self._tasks = ()
        self._busy = False  # a packet is being written (one at a time on the wire)
        self._pid = 0
        self._pids = [0] * max_inflight
        self._st = bytearray(max_inflight)

    async def connect(self, packet=None):
        """Open TCP, send CONNECT, wait for CONNACK; return session_present.

        ``packet``: a CONNECT from ``connect_packet()`` to send this time instead of the one
        built at construction (a new will for a new session, on the same client; not kept).
        Raises ConnectRefused (codes 1-5), MQTTTimeout (no TCP connection or no CONNACK
        within connect_timeout s each) or ConnectionLost (TCP refused or closed).
        """
        if self._w:
            self.close()
        for i in range(len(self._pids)):
            self._pids[i] = 0
        t = self.connect_timeout
        try:
            s = self._w = sock.open_socket(self.host, self.port, self.tls)
            try:  # no asyncio.wait_for: each step has its own deadline of t s
                await sock.send(s, packet or self._pkt, sock.deadline(t))
                b = await self._get(s, 4, sock.deadline(t))
            except asyncio.TimeoutError:
                self.stats["timeouts"] += 1
                raise MQTTTimeout("no CONNACK within %s s" % t)
            if b[0] != 0x20 or b[1] != 2 or b[2] > 1:
                raise MQTTError("bad packet 0x%02x" % b[0])
            if b[3]:  # one string constant costs less heap than a list of six
                reasons = ("?,bad protocol version,client id rejected,"  # noqa: SIM905
                           "server unavailable,bad user or password,not authorized").split(",")
                e = ConnectRefused("CONNACK refused: " + reasons[min(b[3], 6) % 6])
                e.code = b[3]
                raise e
        except Exception as e:
            if not isinstance(e, MQTTError):
                e = ConnectionLost("%s to %s:%d" % (explain(e), self.host, self.port))
            self.close(str(e))
            raise e
        self._rx = self._tx = 0  # ms since the last packet in, out
        self.connected = True
        self._tasks = [asyncio.create_task(self._read(s))]
        if self.keepalive:
            self._tasks.append(asyncio.create_task(self._keepalive()))
        return b[2] == 1

    async def disconnect(self):
        """Send DISCONNECT (the broker discards the will), then close the link."""
        try:
            await self._send(b"\xe0\x00", None, sock.deadline(self.ack_timeout))
        except (MQTTError, asyncio.TimeoutError):
            pass  # the link goes away either way
        self.close()

    def close(self, why="close()", lost=False):
        """Drop the link without DISCONNECT, as a power loss would: the broker sends the will.

        Also the teardown of a lost link (``lost``: counted, once). Stops the tasks and
        wakes every waiter; safe to call twice.
        """
        if lost:
            if not self.connected:
                return
            self.stats["links_lost"] += 1
        self.connected = False
        self.last_error = why
        try:
            me = asyncio.current_task()
        except RuntimeError:  # not called from a task
            me = None
        for t in self._tasks:
            if t is not me:
                t.cancel()
        self._tasks = ()
        w = self._w
        self._w = None
        if w:  # a task still sending on it meets EBADF
            w.close()
        for i in range(len(self._st)):
            if self._st[i] == 0xFF:
                self._st[i] = 0xFE

    async def _get(self, s, n, until=None):
        """Exactly ``n`` bytes from socket ``s`` (EOFError if it closes first)."""
        b = b""
        while len(b) < n:
            b += await sock.recv(s, n - len(b), until)
        return b

    async def _send(self, data, payload=None, until=None):
        while self._busy:  # one packet at a time on the wire: a flag looked at every ms
            await sock.sleep_ms(1)  # (an asyncio.Lock would load 0.7 KB more of asyncio)
        self._busy = True
        w = self._w
        try:
            if not self.connected:
                raise ConnectionLost("link down: %s" % self.last_error)
            await sock.send(w, data, until)
            if type(payload) is tuple:
                for p in payload:
                    await sock.send(w, p, until)
            elif hasattr(payload, "parts"):  # read as it goes (edge.outbox_spill.Spill)
                for p in payload.parts():
                    await sock.send(w, p, until)
            elif payload:
                await sock.send(w, payload, until)
        except BaseException as e:  # failed, late or cancelled with part of it sent
            if isinstance(e, asyncio.TimeoutError):
                self.stats["timeouts"] += 1
            self.close(explain(e), True)
            if isinstance(e, OSError):
                raise ConnectionLost("link down: %s" % self.last_error)
            raise
        finally:
            self._busy = False
        self._tx = 0

    async def _poll(self, i, timeout, what):
        """Until slot ``i`` is answered (``i`` < 0: until a slot is free), looking every
        10 ms; MQTTTimeout after ``timeout`` s, ConnectionLost when waiting for a slot on a
        dead link (a dead link answers every waiting slot with 0xFE)."""
        n = int(timeout * 100)
        while self._st[i] == 0xFF if i >= 0 else 0 not in self._pids:
            if i < 0 and not self.connected:
                raise ConnectionLost("link down: %s" % self.last_error)
            if n <= 0:
                self.stats["timeouts"] += 1
                raise MQTTTimeout("no %s within %s s" % (what, timeout))
            n -= 1
            await sock.sleep_ms(10)

    async def _take(self, timeout):
        """Reserve a window slot for a new packet id (waiting for one up to ``timeout``
        s); return the id."""
        pids = self._pids
        await self._poll(-1, timeout, "free slot")
        pid = self._pid
        while True:
            pid = pid % 65535 + 1
            if pid not in pids:
                break
        self._pid = pid
        i = pids.index(0)
        pids[i] = pid
        self._st[i] = 0xFF
        return pid

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        """Publish ``payload`` (bytes, a tuple of buffers sent one after another, or an
        object with ``len()`` and ``parts()`` giving buffers) to ``topic``; return the
        packet id (0 for QoS 0).

        QoS 1 with ``wait=True`` returns once the PUBACK came (MQTTTimeout after
        ``timeout`` or ack_timeout s). With ``wait=False`` it returns as soon as the
        packet is written; pass the id to ``wait_ack()``, which frees its window slot.
        A full window waits up to the same timeout for a free slot.
        """
        if qos not in (0, 1):
            raise ValueError("QoS %d" % qos)
        t = self.ack_timeout if timeout is None else timeout
        if type(payload) is tuple:  # parts, sent one after another: no joined copy
            n = 0
            for p in payload:
                n += len(p)
        else:
            n = len(payload)
        pid = await self._take(t) if qos else 0
        await self._send(publish_header(topic, n, qos, retain, pid), payload)
        if pid and wait:
            await self.wait_ack(pid, t)
        return pid

    async def wait_ack(self, pid, timeout=None):
        """Wait for the PUBACK (or SUBACK) of ``pid``, free its slot, return its code.

        Raises MQTTTimeout (no ack within timeout / ack_timeout s), ConnectionLost (the
        link died first: send the message again after reconnecting), MQTTError
        (``pid`` is not in flight).
        """
        pids = self._pids
        if not pid or pid not in pids:
            raise MQTTError("%d not in flight" % pid)
        i = pids.index(pid)
        try:
            await self._poll(i, self.ack_timeout if timeout is None else timeout,
                             "ack of %d" % pid)
            if pids[i] != pid or self._st[i] == 0xFE:
                raise ConnectionLost("link down: %s" % self.last_error)
            return self._st[i]
        finally:
            if pids[i] == pid:
                pids[i] = 0

    async def subscribe(self, topic_filter, qos=1, timeout=None):
        """Subscribe to one filter; return the granted QoS; MQTTError if refused (0x80)."""
        t = self.ack_timeout if timeout is None else timeout
        pid = await self._take(t)
        await self._send(subscribe_packet(pid, topic_filter, qos))
        rc = await self.wait_ack(pid, t)
        if rc > 2:
            raise MQTTError("%r refused (ACL?)" % topic_filter)
        return rc

    async def _read(self, s):
        st = self.stats
        get = self._get
        try:
            while True:
                first = (await get(s, 1))[0]
                size = shift = 0
                while True:
                    b = (await get(s, 1))[0]
                    size |= (b & 127) << shift
                    shift += 7
                    if b < 128:
                        break
                    if shift > 21:
                        raise MQTTError("bad packet 0x%02x" % first)
                self._rx = 0
                if first & 0xF4 == 0x30:  # PUBLISH with QoS 0 or 1
                    qos = first >> 1 & 1
                    b = await get(s, 2)
                    n = b[0] << 8 | b[1]
                    left = size - 2 - n - 2 * qos
                    if n > 256 or left < 0:
                        break
                    topic = (await get(s, n)).decode()
                    if qos:
                        b = await get(s, 2)
                    payload = None
                    if left > self.max_payload:
                        while left:
                            n = min(left, 256)
                            await get(s, n)
                            left -= n
                        st["dropped_oversize"] += 1
                    else:
                        payload = await get(s, left)
                    if qos:  # acknowledged even when dropped, or it would come back forever
                        await self._send(b"\x40\x02" + b)
                    if payload is not None:
                        try:
                            self.on_message(topic, payload, first & 1 == 1)
                        except Exception:  # a faulty handler must not kill the link
                            st["callback_errors"] += 1
                elif (first == 0x40 and size == 2) or (first == 0x90 and size == 3):
                    b = await get(s, size)  # PUBACK or SUBACK: packet id (+ code)
                    pid = b[0] << 8 | b[1]
                    if pid in self._pids:
                        i = self._pids.index(pid)
                        if self._st[i] == 0xFF:
                            self._st[i] = b[2] if size == 3 else 0
                elif first != 0xD0 or size:  # anything but a PINGRESP
                    break
            raise MQTTError("bad packet 0x%02x" % first)
        except Exception as e:  # EOF, reset, EBADF after close, bad packet or UTF-8
            self.close(explain(e), True)

    async def _keepalive(self):
        ka = self.keepalive * 1000
        half = ka // 2
        tick = max(50, min(1000, ka // 4))
        while True:
            await sock.sleep_ms(tick)
            self._rx += tick
            self._tx += tick
            if self._rx >= ka * 3 // 2:
                self.stats["timeouts"] += 1
                self.close("nothing from the broker for %d ms" % self._rx, True)
                return
            if (self._rx >= half or self._tx >= half) and not self._busy:
                self._tx = 0
                self.stats["pings"] += 1
                try:  # not waited for: a full socket buffer must not stall this loop
                    n = self._w.send(b"\xc0\x00")  # None: TLS would block, no ping now
                    if n is not None and n != 2:
                        raise OSError("ping cut")  # 1 byte went: the stream is broken
                except OSError as e:
                    if e.errno != sock.errno.EAGAIN:  # a full buffer: no ping this time
                        self.close(explain(e), True)
                        return
