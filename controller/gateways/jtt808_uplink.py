"""The gateway's MQTT side: it is the portwatch agent of every JT/T 808 terminal.

For each terminal (device ``jt-<phone>``) it seals events with that device's HMAC key
(read from the controller's store, reloaded when keys change), numbers them with a seq
that only grows (kept in the gateway's own SQLite file with the outbox, so a restart
continues where it stopped), publishes them on the device's ``evt`` topic with QoS 1 and
keeps them until the controller's signed ``ack`` says they are committed. Like an agent,
it resends what no ack covers after a reconnect, after an ack with ``resync`` and when
``resend_after_s`` pass without progress.

Guarantee given to the terminal (``submit`` returns True, the session then answers
0x8001): the report's events are committed to the gateway's outbox on disk
(``synchronous=FULL``) and the broker has acknowledged each of them (PUBACK). From there
they reach the controller at least once, whatever restarts of broker, controller or
gateway follow, and the controller stores each (device, seq) once. A report the terminal
sends again (no answer reached it) is recognised by its digest and not numbered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from controller import registry
from controller.gateways.jtt808_events import DEVICE_PREFIX, Event
from controller.ingest.service import BrokerSettings, tls_context
from controller.keyring import DeviceKey, newest_key
from controller.storage import Store, gateway_logins, gateway_state, now_ms, open_store
from controller.storage import devices as device_rows
from protocols import envelope, topics

log = logging.getLogger(__name__)
FW = "portwatch-jtt808-gateway/1"
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 2.0
SEEN_KEEP_MS = 24 * 3600 * 1000
IN_FLIGHT = 8
WINDOW = 8  # events resent per device when acks stall
ACK_GRACE_S = 0.3  # after a (re)connect, before the outbox goes out again


@dataclass
class UplinkStats:
    """Counters of the MQTT side (the status file and the log show them)."""

    connected: bool = False
    connects: int = 0
    published: int = 0
    resends: int = 0
    acks: int = 0
    acks_bad: int = 0
    acks_beyond: int = 0
    duplicate_reports: int = 0
    births: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def count(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Uplink:
    """Seal, persist, publish and track the events of every terminal."""

    def __init__(self, *, store_path: Path, state_path: Path, site: str,
                 broker: BrokerSettings, resend_after_s: float = 10.0,
                 answer_timeout_s: float = 10.0) -> None:
        self.site = site
        self.broker = broker
        self.resend_after_s = resend_after_s
        self.answer_timeout_s = answer_timeout_s
        self.stats = UplinkStats()
        self._store: Store = open_store(store_path, migrate=False)
        self.state = gateway_state.open_state(state_path)
        self.boot = gateway_state.next_boot(self.state)
        self._keys = registry.secrets_by_device(self._store)
        self._keys_stamp = registry.keys_stamp(self._store)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._waiters: dict[tuple[str, int], asyncio.Future[None]] = {}
        self._confirmed: set[tuple[str, int]] = set()
        self._progress: dict[str, float] = {}  # device -> monotonic time of last ack progress
        self._state_seq: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribed: set[str] = set()
        self._sent_link: set[tuple[str, int]] = set()  # published on the current link
        # aiomqtt warns past 10 publishes awaiting their PUBACK (the controller keeps 8)
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)

    # -- keys and terminals -----------------------------------------------------------

    def _ring(self) -> dict[str, dict[str, DeviceKey]]:
        stamp = registry.keys_stamp(self._store)
        if stamp != self._keys_stamp:
            self._keys = registry.secrets_by_device(self._store)
            self._keys_stamp = stamp
        return self._keys

    def key(self, device_id: str) -> tuple[str, DeviceKey] | None:
        """The newest HMAC key of a device in service, or None."""
        keys = self._ring().get(device_id)
        return newest_key(keys) if keys else None

    def provisioned(self, device_id: str) -> bool:
        """True when ``device_id`` is a gps device of this site, in service, with a key."""
        row = gateway_logins.terminal(self._store, device_id)
        return (row is not None and row["kind"] == "gps" and row["site"] == self.site
                and row["decommissioned_ms"] is None and self.key(device_id) is not None)

    def _terminal(self, device_id: str) -> tuple[int, int, int | None]:
        row = gateway_state.terminal(self.state, device_id)
        if row is None:
            # first seen by this gateway (or its state file was lost): start after what the
            # controller already committed, never under a seq it holds
            start = device_rows.committed_seq(self._store, device_id) + 1
            gateway_state.add_terminal(self.state, device_id, start)
            row = (start, start - 1, None)
        return row

    def alarm_bits(self, device_id: str) -> int | None:
        """The alarm DWORD of the terminal's last report (None: never reported)."""
        return self._terminal(device_id)[2]

    def next_seq(self, device_id: str) -> int:
        return self._terminal(device_id)[0]

    # -- events -----------------------------------------------------------------------

    def seen(self, device_id: str, digest: str) -> int | None:
        """The last seq made from a report with this digest (a resend), or None."""
        return gateway_state.seen_seq(self.state, device_id, digest)

    def store(self, device_id: str, events: Sequence[Event], *, digest: str,
              alarm_bits: int | None) -> list[int]:
        """Seal ``events`` under the next seqs and commit them to the outbox (no await: two
        sessions of one terminal cannot interleave here). Returns their seqs."""
        found = self.key(device_id)
        if found is None:
            raise LookupError(f"device {device_id!r} has no key in the store: provision it")
        key_id, key = found
        first = self._terminal(device_id)[0]
        topic = topics.topic(self.site, device_id, "evt")
        wires = [envelope.seal(key.secret, key_id, topic,
                               envelope.make(device_id, self.boot, seq, e.ts_ms, e.kind, e.body))
                 for seq, e in enumerate(events, start=first)]
        last = gateway_state.store_events(self.state, device_id, first, wires,
                                          alarm_bits=alarm_bits, digest=digest,
                                          now_ms=now_ms())
        return list(range(first, last + 1))

    async def submit(self, device_id: str, events: Sequence[Event], *, digest: str,
                     alarm_bits: int | None) -> bool:
        """Store and publish one report's events; True once all are PUBACKed (see the
        module's doc), False when the broker did not confirm within ``answer_timeout_s``
        (they stay in the outbox and go out after the reconnect)."""
        last = self.seen(device_id, digest)
        if last is not None:
            self.stats.duplicate_reports += 1
            seqs = [s for _, s, _ in gateway_state.pending(self.state, device_id, upto=last)]
        else:
            if not events:
                return True
            waiting = gateway_state.pending(self.state, device_id, limit=1)
            seqs = self.store(device_id, events, digest=digest, alarm_bits=alarm_bits)
            if not waiting:  # the stall clock starts with the first event left unacked
                self._progress[device_id] = time.monotonic()
        return await self.confirmed(device_id, seqs)

    async def confirmed(self, device_id: str, seqs: Sequence[int]) -> bool:
        """Wait until each of ``seqs`` is PUBACKed (or acknowledged by the controller)."""
        loop = asyncio.get_running_loop()
        futures = []
        for seq in seqs:
            k = (device_id, seq)
            if k in self._confirmed:
                continue
            fut = self._waiters.get(k)
            if fut is None:
                fut = self._waiters[k] = loop.create_future()
            futures.append(fut)
        if not futures:
            return True
        rows = {s: w for _, s, w in gateway_state.pending(self.state, device_id, min(seqs) - 1,
                                                          max(seqs))}
        for seq in seqs:
            if seq in rows and (device_id, seq) not in self._confirmed:
                self._spawn(self._publish(device_id, seq, rows[seq]))
        try:
            await asyncio.wait_for(asyncio.gather(*(asyncio.shield(f) for f in futures)),
                                   self.answer_timeout_s)
        except TimeoutError:
            return False
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _done(self, device_id: str, seq: int) -> None:
        k = (device_id, seq)
        self._confirmed.add(k)
        fut = self._waiters.pop(k, None)
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _publish(self, device_id: str, seq: int, wire: bytes) -> None:
        """Publish one sealed event when connected; a failure leaves it to the resend."""
        client = self._client
        if client is None:
            return  # the connect handler publishes the whole outbox
        try:
            async with self._in_flight:
                await client.publish(topics.topic(self.site, device_id, "evt"), wire, qos=1)
        except aiomqtt.MqttError as exc:
            log.info("publish %s seq %d failed (%s): resent after the reconnect",
                     device_id, seq, exc)
            return
        self.stats.published += 1
        self._sent_link.add((device_id, seq))
        self._done(device_id, seq)

    async def _publish_pending(self, device_id: str | None = None, after: int = 0, *,
                               again: bool = True, limit: int = -1) -> None:
        """Publish the outbox (one device's after ``after``, at most ``limit``);
        ``again=False`` leaves out what this link already carried."""
        for dev, seq, wire in gateway_state.pending(self.state, device_id, after,
                                                    limit=limit):
            if again or (dev, seq) not in self._sent_link:
                await self._publish(dev, seq, wire)

    async def subscribe(self, device_id: str) -> None:
        """Subscribe to the terminal's ``ack`` once per connection (a terminal provisioned
        after the connect is subscribed at its first authentication)."""
        client = self._client
        if client is None or device_id in self._subscribed:
            return
        await client.subscribe(topics.topic(self.site, device_id, "ack"), qos=1)
        self._subscribed.add(device_id)

    # -- state: births and deaths ----------------------------------------------------

    async def announce(self, device_id: str, kind: str) -> None:
        """Publish the terminal's ``birth`` (it came online) or ``death`` (its link ended)
        on its ``state`` topic, retained: device status in the API follows the terminal.
        Best effort: none while the broker is away."""
        client, found = self._client, self.key(device_id)
        if client is None or found is None:
            return
        key_id, key = found
        try:
            await self.subscribe(device_id)
        except aiomqtt.MqttError as exc:
            log.info("ack subscription of %s failed (%s): after the reconnect", device_id, exc)
            return
        seq = self._state_seq[device_id] = self._state_seq.get(device_id, 0) + 1
        body: dict[str, Any] = {}
        if kind == "birth":
            body = {"fw": FW, "kind": "gps", "hal": "jtt808", "driver": "jtt808",
                    "next_seq": self.next_seq(device_id)}
        topic = topics.topic(self.site, device_id, "state")
        wire = envelope.seal(key.secret, key_id, topic,
                             envelope.make(device_id, self.boot, seq, now_ms(), kind, body))
        try:
            async with self._in_flight:
                await client.publish(topic, wire, qos=1, retain=True)
            self.stats.births += kind == "birth"
        except aiomqtt.MqttError as exc:
            log.info("%s of %s not published (%s)", kind, device_id, exc)

    # -- acks -------------------------------------------------------------------------

    async def on_ack(self, topic: str, payload: bytes) -> None:
        """Handle the controller's signed ``ack`` of one terminal: drop what it covers,
        resend after it on ``resync``."""
        try:
            _, device_id, _ = topics.parse(topic)
            keys = self._ring().get(device_id) or {}
            fields, _ = envelope.open_message(
                lambda kid: keys[kid].secret if kid in keys else None, topic, payload)
            if fields.get("dev") != device_id or fields.get("kind") != "ack":
                raise ValueError("not an ack of this device")
            upto, resync = fields["body"]["upto"], bool(fields["body"].get("resync"))
            if type(upto) is not int or upto < 0:
                raise ValueError(f"upto {upto!r}")
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.acks_bad += 1
            log.warning("bad ack on %s: %s", topic, exc)
            return
        next_seq, acked, _ = self._terminal(device_id)
        if upto >= next_seq:
            self.stats.acks_beyond += 1
            log.warning("ack of %s up to %d, beyond its next seq %d: ignored", device_id,
                        upto, next_seq)
            return
        self.stats.acks += 1
        if upto > acked:
            gateway_state.acknowledge(self.state, device_id, upto)
            self._progress[device_id] = time.monotonic()
            for k in [k for k in self._confirmed if k[0] == device_id and k[1] <= upto]:
                self._confirmed.discard(k)
                self._sent_link.discard(k)
            for k in [k for k in self._waiters if k[0] == device_id and k[1] <= upto]:
                self._done(*k)
        if resync:
            await self._publish_pending(device_id, upto)

    async def _after_connect(self) -> None:
        """Publish the outbox once the retained acks had ``ACK_GRACE_S`` to arrive (they
        drop what the controller already holds), then watch for stalls."""
        await asyncio.sleep(ACK_GRACE_S)
        await self._publish_pending(again=False)
        await self._resend_stalled()

    async def _resend_stalled(self) -> None:
        """Every second: a device whose sent events saw no ack progress for
        ``resend_after_s`` gets them again (an ack lost, a controller that dropped them)."""
        pruned = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - pruned >= 3600:  # report digests older than a day, hourly
                gateway_state.forget_seen(self.state, now_ms() - SEEN_KEEP_MS)
                pruned = now
            for device_id in gateway_state.pending_devices(self.state):
                since = self._progress.get(device_id, now)
                if now - since >= self.resend_after_s:
                    self.stats.resends += 1
                    self._progress[device_id] = now
                    log.info("no ack progress of %s for %.0f s: resending its first %d "
                             "unacknowledged events", device_id, now - since, WINDOW)
                    # a window, as an agent does: the broker keeps the controller's queue
                    # through its outage, and all of it every 10 s would grow that queue
                    await self._publish_pending(device_id, limit=WINDOW)
                else:
                    self._progress.setdefault(device_id, now)

    # -- the connection ---------------------------------------------------------------

    async def run(self) -> None:
        """Stay connected to the broker (back-off 0.2-2 s), forever."""
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._session()
                delay = RECONNECT_MIN_S
            except aiomqtt.MqttError as exc:
                self.stats.count("mqtt")
                hint = ("; a login the broker does not know yet: regenerate its files "
                        "(`portwatch broker config`) and reload it"
                        if "authori" in str(exc).lower() else "")
                log.warning("broker %s:%s: %s%s; retrying in %.1f s", self.broker.host,
                            self.broker.port, exc, hint, delay)
            self._client = None
            self._connected.clear()
            self.stats.connected = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.broker.host, self.broker.port, username=self.broker.username,
            password=self.broker.password,
            identifier=self.broker.client_id or self.broker.username or "portwatch-jtt808",
            clean_session=False, keepalive=15, tls_context=tls_context(self.broker.ca))
        async with client:
            self._client = client
            self.stats.connected = True
            self.stats.connects += 1
            self._connected.set()
            log.info("gateway connected to %s:%s (boot %d, %d events in the outbox)",
                     self.broker.host, self.broker.port, self.boot,
                     gateway_state.backlog(self.state))
            # each terminal's own ack topic: the ACL names them one by one, and Mosquitto
            # refuses a wildcard subscription wider than the rules
            self._subscribed = set()
            self._sent_link = set()
            for device_id in gateway_logins.terminal_ids(self._store, site=self.site,
                                                         prefix=DEVICE_PREFIX):
                await self.subscribe(device_id)
            gateway_state.forget_seen(self.state, now_ms() - SEEN_KEEP_MS)
            resend = asyncio.create_task(self._after_connect())
            try:
                async for message in client.messages:
                    payload = message.payload
                    raw = (bytes(payload) if isinstance(payload, bytes | bytearray)
                           else str(payload).encode())
                    await self.on_ack(str(message.topic), raw)
            finally:
                resend.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resend
        raise aiomqtt.MqttError("message stream ended")

    def backlog(self) -> int:
        return gateway_state.backlog(self.state)

    def close(self) -> None:
        self.state.close()
        self._store.close()
