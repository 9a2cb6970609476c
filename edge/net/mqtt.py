"""The firmware's own asyncio MQTT 3.1.1 client (MicroPython 1.2x and CPython 3.11).

Why our own: the MicroPython MQTT libraries on PyPI (micropython-mqtt's mqtt_as,
umqtt) are upip-era source archives that pip cannot install (DOMAIN.md, Messaging),
and the agent needs a client it can bound in RAM and test against Mosquitto.

Failures it survives, and how (defaults in brackets):

- Broker stops or resets the TCP link: the reader sees EOF at once; the link is
  declared dead, ``connected`` turns False and every waiter (PUBACK, SUBACK,
  ``get_message``) gets ``ConnectionLost``. Reconnecting is the caller's job.
- Broker frozen or cable pulled (no FIN): a PINGREQ goes out once nothing has been
  received, or nothing sent, for keepalive/2 s; when nothing at all has come from the
  broker for 1.5 x keepalive s [45 s] the link is declared dead, checked every
  min(1 s, keepalive/4).
- Broker silent after TCP connect: no CONNACK within ``connect_timeout`` [5 s] ->
  ``MQTTTimeout``; CONNACK codes 1-5 -> ``ConnectRefused`` with the reason.
- No PUBACK / SUBACK within ``ack_timeout`` [10 s] -> ``MQTTTimeout``; the link stays
  up (the keepalive decides whether it is dead). SUBACK 0x80 -> ``MQTTError``.
- Power loss: ``close()`` drops the socket without DISCONNECT, so the broker sends
  the will; ``disconnect()`` sends DISCONNECT first, so it does not.

Limits, all allocated once in the constructor: QoS 1 publishes in flight at most
``max_inflight`` [8] (the next one waits for a free slot; a slot is freed only by
``wait_ack()``, so every id from ``publish(..., wait=False)`` must go there); incoming
messages go to ``on_message(topic, payload, retained)`` or, without it, to a queue
read by ``get_message()`` at most ``queue_len`` [8] deep, the newest message dropped
when it is full (``stats["dropped_incoming"]``); a PUBLISH payload
over ``max_payload`` [4,096 bytes] is read through in 256-byte chunks without
being kept, acknowledged (so the broker does not redeliver it forever) and counted
in ``stats["dropped_oversize"]``; an incoming topic over 256 bytes or a control
packet over 4 bytes is a protocol error and drops the link.

RAM (gc.mem_free on the 64-bit unix port, whose pointers are twice an ESP32's): this
module and its codec hold about 20 KB once imported; compiling them from source needs
about 75 KB of heap for a moment, so a 96 KB device loads them as .mpy (mpy-cross; 34 KB
heap suffices) or frozen. One client with the default limits takes about 3 KB, 1 KB more
once connected, and does not grow with traffic (hil_tests/test_edge_mqtt_client.py).

Not done on purpose: QoS 2, retransmission with DUP after reconnect (the client
never holds a payload; an unacknowledged QoS 1 publish ends in ``ConnectionLost``
and the agent's persistent outbox sends it again), unsubscribe, TLS.
"""

import asyncio

from edge.net import mqtt_codec as codec
from edge.net.mqtt_codec import (  # noqa: F401 - re-exported: the module's exceptions
    ConnectionLost,
    ConnectRefused,
    MQTTError,
    MQTTTimeout,
    ProtocolError,
)

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


_MAX_TOPIC = 256  # longest incoming topic accepted (our own subtree is far shorter)
_CHUNK = 256  # read size when skipping an oversized payload
_HDR_TOPIC = 120  # topics up to this length reuse the preallocated header buffer
_FREE, _PENDING, _ACKED, _LOST = 0, 1, 2, 3


class MQTTClient:
    """One MQTT 3.1.1 connection to one broker; see the module docstring for behaviour."""

    def __init__(self, client_id, host, port=1883, user=None, password=None, keepalive=30,
                 clean_session=True, will=None, connect_timeout=5, max_payload=4096,
                 ack_timeout=10, max_inflight=8, queue_len=8, on_message=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self._connect_pkt = codec.encode_connect(client_id, keepalive, clean_session, user,
                                                 password, will)
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.max_payload = max_payload
        self.on_message = on_message
        self.connected = False
        self.last_error = None  # why the link went down last, for health reports
        self.stats = {"sent": 0, "received": 0, "pings": 0, "timeouts": 0,
                      "dropped_incoming": 0, "dropped_oversize": 0, "callback_errors": 0,
                      "links_lost": 0}
        self._r = self._w = None
        self._tasks = []
        self._wlock = asyncio.Lock()
        self._sublock = asyncio.Lock()
        self._hdr = bytearray(codec.publish_header_size(b"x" * _HDR_TOPIC, 1))
        self._rl = bytearray(4)  # incoming remaining-length bytes
        self._pid = 0
        # QoS 1 in-flight window: slot i holds a packet id, its state and an Event.
        self._slot_pid = [0] * max_inflight
        self._slot_state = bytearray(max_inflight)
        self._slot_ev = [asyncio.Event() for _ in range(max_inflight)]
        self._window = asyncio.Event()
        self._sub_pid = 0
        self._sub_rc = None
        self._sub_ev = asyncio.Event()
        # Incoming ring queue (used when on_message is None).
        self._q = [None] * queue_len
        self._qhead = 0
        self._qlen = 0
        self._qev = asyncio.Event()
        self._last_rx = self._last_tx = self._last_ping = 0

    # -- connection ---------------------------------------------------------------

    async def connect(self):
        """Open TCP, send CONNECT, wait for CONNACK; return session_present.

        Raises ConnectRefused (codes 1-5), MQTTTimeout (no CONNACK within
        connect_timeout s) or ConnectionLost (TCP refused or closed).
        """
        if self._w is not None:
            self._teardown("connect() called again", False)
        try:
            sp = await asyncio.wait_for(self._handshake(), self.connect_timeout)
            err = None
        except asyncio.TimeoutError:  # before OSError: CPython's TimeoutError is one
            self.stats["timeouts"] += 1
            err = MQTTTimeout("no CONNACK from %s:%d within %s s"
                              % (self.host, self.port, self.connect_timeout))
        except (OSError, EOFError) as exc:
            err = ConnectionLost("cannot connect to %s:%d: %r" % (self.host, self.port, exc))
        except MQTTError as exc:
            err = exc
        if err is not None:
            self._teardown(str(err), False)
            raise err
        self._last_rx = self._last_tx = self._last_ping = ticks_ms()
        self.connected = True
        self._tasks.append(asyncio.create_task(self._read_loop()))
        if self.keepalive:
            self._tasks.append(asyncio.create_task(self._keepalive_loop()))
        return sp

    async def _handshake(self):
        self._r, self._w = await asyncio.open_connection(self.host, self.port)
        self._w.write(self._connect_pkt)
        await self._w.drain()
        head = await self._r.readexactly(2)
        if head[0] != codec.CONNACK or head[1] != 2:
            raise ProtocolError("expected CONNACK, got %r" % head)
        sp = codec.parse_connack(await self._r.readexactly(2))
        self.stats["sent"] += 1
        self.stats["received"] += 1
        return sp

    async def disconnect(self):
        """Send DISCONNECT (the broker discards the will) and close the link."""
        if self.connected:
            try:
                await asyncio.wait_for(self._send(codec.DISCONNECT), self.ack_timeout)
            except (MQTTError, asyncio.TimeoutError):
                pass  # the link is going away either way
        self._teardown("disconnect()", False, True)

    def close(self):
        """Drop the link without DISCONNECT, as a power loss would: the broker sends the will."""
        self._teardown("close()", False)

    def _teardown(self, why, lost, graceful=False):
        """Close the link, stop the tasks, wake every waiter; safe to call twice."""
        if lost:
            if not self.connected:
                return
            self.stats["links_lost"] += 1
        self.connected = False
        self.last_error = why
        try:
            me = asyncio.current_task()
        except RuntimeError:  # CPython outside a task
            me = None
        for task in self._tasks:
            if task is not me:
                task.cancel()
        self._tasks.clear()
        w = self._w
        self._r = self._w = None
        if w is not None:
            if hasattr(w, "transport"):  # CPython: abort() drops buffered bytes, wakes drain()
                w.close() if graceful else w.transport.abort()
            else:  # MicroPython: Stream.close() is a no-op and wait_closed() closes the
                try:  # socket; closing it here wakes a blocked reader/writer with EBADF
                    w.s.close()
                except OSError:
                    pass
        for i in range(len(self._slot_pid)):
            if self._slot_pid[i] and self._slot_state[i] == _PENDING:
                self._slot_state[i] = _LOST
                self._slot_ev[i].set()
        self._window.set()
        self._sub_ev.set()
        self._qev.set()

    # -- sending ------------------------------------------------------------------

    async def _send(self, head, payload=None):
        async with self._wlock:
            w = self._w
            if not self.connected or w is None:
                raise ConnectionLost("not connected (%s); call connect()" % self.last_error)
            try:
                w.write(head)
                if payload:
                    w.write(payload)
                await w.drain()
            except OSError as exc:
                self._teardown("write failed: %r" % exc, True)
                raise ConnectionLost("link to %s:%d lost while sending: %r"
                                     % (self.host, self.port, exc))
            except BaseException:  # cancelled mid-drain: MicroPython's Stream would resend
                if getattr(w, "out_buf", None):  # part of out_buf, so the byte stream is
                    self._teardown("send cancelled mid-packet", True)  # no longer trustworthy
                raise
        self._last_tx = ticks_ms()
        self.stats["sent"] += 1

    def _next_pid(self):
        while True:
            self._pid = self._pid % 65535 + 1
            if self._pid not in self._slot_pid and self._pid != self._sub_pid:
                return self._pid

    async def _wait(self, ev, timeout, what):
        try:
            await asyncio.wait_for(ev.wait(), timeout)
        except asyncio.TimeoutError:
            self.stats["timeouts"] += 1
            raise MQTTTimeout("%s within %s s" % (what, timeout))

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        """Publish ``payload`` (bytes) to ``topic``; return the packet id (0 for QoS 0).

        QoS 1 with ``wait=True`` returns once the PUBACK came (MQTTTimeout after
        ``timeout`` or ack_timeout s). With ``wait=False`` it returns as soon as the
        packet is written; pass the id to ``wait_ack()``, which frees its window slot.
        A full window waits up to the same timeout for a free slot.
        """
        tb = topic.encode() if isinstance(topic, str) else topic
        if isinstance(payload, str):
            payload = payload.encode()
        if qos not in (0, 1):
            raise ValueError("this client publishes with QoS 0 or 1, not %r" % qos)
        timeout = self.ack_timeout if timeout is None else timeout
        slot = pid = 0
        if qos:
            deadline = ticks_add(ticks_ms(), int(timeout * 1000))
            while True:
                if not self.connected:
                    raise ConnectionLost("not connected (%s)" % self.last_error)
                if 0 in self._slot_pid:
                    break
                self._window.clear()
                await self._wait(self._window, max(0, ticks_diff(deadline, ticks_ms())) / 1000,
                                 "in-flight window full (ids not passed to wait_ack?)")
            slot = self._slot_pid.index(0)
            pid = self._next_pid()
            self._slot_pid[slot] = pid
            self._slot_state[slot] = _PENDING
            self._slot_ev[slot].clear()
        hdr = self._hdr if len(tb) <= _HDR_TOPIC else bytearray(
            codec.publish_header_size(tb, qos))
        try:
            n = codec.publish_header_into(hdr, tb, len(payload), qos, retain, False, pid)
            # CPython streams may keep a reference to what they are given: copy there;
            # MicroPython copies by itself whatever it cannot send at once
            await self._send(bytes(hdr[:n]) if hasattr(self._w, "transport")
                             else memoryview(hdr)[:n], payload)
        except BaseException:
            self._free(slot, pid)
            raise
        if qos and wait:
            await self.wait_ack(pid, timeout)
        return pid

    def _free(self, slot, pid):
        if pid and self._slot_pid[slot] == pid:
            self._slot_pid[slot] = 0
            self._slot_state[slot] = _FREE
            self._window.set()

    async def wait_ack(self, pid, timeout=None):
        """Wait for the PUBACK of a ``publish(..., qos=1, wait=False)``; free its slot.

        Raises MQTTTimeout (no PUBACK within timeout / ack_timeout s), ConnectionLost
        (the link died first: send the message again after reconnecting), MQTTError
        (``pid`` is not in flight).
        """
        if not pid or pid not in self._slot_pid:
            raise MQTTError("packet id %d is not in flight" % pid)
        slot = self._slot_pid.index(pid)
        try:
            if self._slot_state[slot] == _PENDING:
                timeout = self.ack_timeout if timeout is None else timeout
                await self._wait(self._slot_ev[slot], timeout, "no PUBACK for packet %d" % pid)
            if self._slot_pid[slot] != pid or self._slot_state[slot] != _ACKED:
                raise ConnectionLost("link lost before the PUBACK of packet %d (%s); "
                                     "send it again" % (pid, self.last_error))
        finally:
            self._free(slot, pid)

    def inflight(self):
        """Number of QoS 1 packet ids not yet passed through wait_ack()."""
        return len(self._slot_pid) - self._slot_pid.count(0)

    async def subscribe(self, topic_filter, qos=1, timeout=None):
        """Subscribe to one filter; return the granted QoS; MQTTError if refused (0x80)."""
        timeout = self.ack_timeout if timeout is None else timeout
        async with self._sublock:
            self._sub_pid = self._next_pid()
            self._sub_rc = None
            self._sub_ev.clear()
            try:
                await self._send(codec.encode_subscribe(self._sub_pid, topic_filter, qos))
                await self._wait(self._sub_ev, timeout, "no SUBACK for %r" % topic_filter)
            finally:
                self._sub_pid = 0
            rc = self._sub_rc
            if rc is None:
                raise ConnectionLost("link lost before the SUBACK (%s)" % self.last_error)
            if rc == codec.SUBACK_FAILURE:
                raise MQTTError("broker refused subscription to %r: check its ACL"
                                % topic_filter)
            return rc

    # -- receiving ----------------------------------------------------------------

    async def get_message(self, timeout=None):
        """Next queued ``(topic, payload, retained)``; ConnectionLost once the queue is
        empty and the link is down; MQTTTimeout after ``timeout`` s (None: wait)."""
        while not self._qlen:
            if not self.connected:
                raise ConnectionLost("not connected (%s)" % self.last_error)
            self._qev.clear()
            if timeout is None:
                await self._qev.wait()
            else:
                await self._wait(self._qev, timeout, "no message")
        msg = self._q[self._qhead]
        self._q[self._qhead] = None
        self._qhead = (self._qhead + 1) % len(self._q)
        self._qlen -= 1
        return msg

    async def _read_loop(self):
        r = self._r
        try:
            while True:
                first = (await r.readexactly(1))[0]
                for i in range(4):
                    self._rl[i] = (await r.readexactly(1))[0]
                    if not self._rl[i] & 0x80:
                        break
                size = codec.decode_remaining_length(self._rl)[0]
                self._last_rx = ticks_ms()
                self.stats["received"] += 1
                if first & 0xF0 == codec.PUBLISH:
                    await self._read_publish(r, first, size)
                elif size > 4:
                    raise ProtocolError("packet 0x%02x of %d bytes" % (first, size))
                else:
                    self._on_control(first, await r.readexactly(size) if size else b"")
        except Exception as exc:  # EOF, reset, EBADF after close, bad packet, bad UTF-8
            self._teardown("reader: %r" % exc, True)

    def _on_control(self, first, body):
        kind = first & 0xF0
        if kind == codec.PUBACK:
            pid = codec.parse_ack(body)
            if pid in self._slot_pid:
                slot = self._slot_pid.index(pid)
                if self._slot_state[slot] == _PENDING:
                    self._slot_state[slot] = _ACKED
                    self._slot_ev[slot].set()
        elif kind == codec.SUBACK:
            pid, codes = codec.parse_suback(body)
            if pid == self._sub_pid:
                self._sub_rc = codes[0]
                self._sub_ev.set()
        elif kind not in (codec.PINGRESP, codec.UNSUBACK):
            raise ProtocolError("unexpected packet type 0x%02x" % first)

    async def _read_publish(self, r, first, size):
        qos, retained, _dup = codec.publish_flags(first)
        if qos > 1:
            raise ProtocolError("PUBLISH with QoS 2: this client subscribes with QoS <= 1")
        head = await r.readexactly(2)
        tlen = (head[0] << 8) | head[1]
        left = size - 2 - tlen - (2 if qos else 0)
        if tlen > _MAX_TOPIC or left < 0:
            raise ProtocolError("PUBLISH topic of %d bytes in a %d-byte packet" % (tlen, size))
        topic = (await r.readexactly(tlen)).decode()
        if qos:
            head = await r.readexactly(2)
        payload = None
        if left > self.max_payload:
            while left:
                chunk = await r.read(min(left, _CHUNK))
                if not chunk:
                    raise EOFError
                left -= len(chunk)
            self.stats["dropped_oversize"] += 1
        else:
            payload = await r.readexactly(left) if left else b""
        if qos:  # acknowledged even when dropped, or the broker would redeliver it forever
            await self._send(codec.encode_puback((head[0] << 8) | head[1]))
        if payload is None:
            return
        if self.on_message is not None:
            try:
                self.on_message(topic, payload, retained)
            except Exception:  # a faulty handler must not kill the link
                self.stats["callback_errors"] += 1
        elif self._qlen == len(self._q):
            self.stats["dropped_incoming"] += 1
        else:
            self._q[(self._qhead + self._qlen) % len(self._q)] = (topic, payload, retained)
            self._qlen += 1
            self._qev.set()

    # -- keepalive ----------------------------------------------------------------

    async def _keepalive_loop(self):
        ka_ms = self.keepalive * 1000
        half = ka_ms // 2
        tick = max(50, min(1000, ka_ms // 4))
        while self.connected:
            await asyncio.sleep(tick / 1000)
            now = ticks_ms()
            rx_idle = ticks_diff(now, self._last_rx)
            if rx_idle >= ka_ms * 3 // 2:
                self.stats["timeouts"] += 1
                self._teardown("nothing from the broker for %d ms (keepalive %d s)"
                               % (rx_idle, self.keepalive), True)
                return
            idle = rx_idle >= half or ticks_diff(now, self._last_tx) >= half
            if idle and ticks_diff(now, self._last_ping) >= half and not self._wlock.locked():
                self._last_ping = now
                self.stats["pings"] += 1
                try:  # a ping stuck behind a full socket buffer gives up after one tick
                    await asyncio.wait_for(self._send(codec.PINGREQ), tick / 1000)
                except asyncio.TimeoutError:
                    pass
                except MQTTError:
                    return
