"""The imperative shell of ingest: aiomqtt in, a bounded queue, batched commits, acks out.

aiomqtt acknowledges QoS 1 to the broker on receipt, before our commit (its issue
#345), so a crash mid-batch loses what the broker already handed over. Delivery
is made loss-free one level up: after each durable commit the controller
publishes, signed and retained, "committed up to seq N" to each device on
``pw/v1/<site>/<dev>/ack``, and the device keeps every event in its outbox until
then, resending what is not covered.

The same argument bounds the queue between the reader and the writer: when it is full
(the store fell behind), a message is dropped, counted and logged instead of growing the
controller's memory without bound; the device still holds it and resends it, because no
ack covers it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from controller import calibration_watch, commands, mass_balance, registry
from controller.audit_watch import AuditSettings, AuditWatch
from controller.cross_sensor import CrossSensor
from controller.errors import ControllerError
from controller.facts import Fact
from controller.gate_service import GateControl
from controller.ingest import rejects
from controller.ingest.stats import IngestStats
from controller.ingest.verify import Accepted, Received, Rejected, Verdict, check_message
from controller.ingest.writer import BatchResult, commit_batch
from controller.keyring import DeviceKey, newest_key
from controller.metrics.ingest import IngestMetrics
from controller.plausibility import Settings
from controller.storage import devices as device_rows
from controller.storage import now_ms, open_store, transaction, views
from controller.supervision.runner import Runner
from protocols import envelope, topics

log = logging.getLogger("portwatch.ingest")
ACK_CONCURRENCY = 8  # aiomqtt warns past 10 pending publishes
# ~14 s of backlog at the measured commit rate, ~60 MB at ~600 B a message: a site's agents
# draining their outboxes after an outage (100 agents x 700 events) fit without a drop
QUEUE_MAX = 100_000
UNKNOWN_IDS_MAX = 10_000  # unknown device ids remembered as looked up (memory bound)
# capped low: after an outage of any length the controller is back within ~1 s of the
# broker (it is one client per site, so there is no herd to spread)
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 1.0
# CONNACK codes that mean "the broker is there but will not have us": MQTT 3.1.1's 4 and 5,
# which paho-mqtt 2 (under aiomqtt) reports as the MQTT 5 reason codes 134 and 135
_LOGIN_REFUSED = {4: "bad user name or password", 5: "not authorized",
                  134: "bad user name or password", 135: "not authorized"}


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How the controller reaches the broker.

    ``client_id`` empty: the login (``username``), which a portwatch broker makes every
    client's id anyway (``use_username_as_clientid``: no other login can take it over);
    without a login, made from the site and the store's own id, so that two controllers
    on two stores never share an MQTT client id (the broker would drop the older session).
    Either way a restarted controller resumes its persistent session.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = ""
    ca: Path | None = None  # the site CA: over TLS, the broker's certificate pinned to it


def tls_context(ca: Path | None) -> ssl.SSLContext | None:
    """A client context trusting only the site CA at ``ca`` (None: clear MQTT).

    Not the system's trust store: a certificate any public CA signed for the broker's name
    must not pass. The broker's certificate must also name the host dialled.
    """
    if ca is None:
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(ca))
    return ctx


class IngestService:
    """Subscribe to a site's uplink, commit in batches, acknowledge after commit."""

    def __init__(self, *, db_path: Path, site: str, broker: BrokerSettings,
                 batch_max: int = 500, batch_wait_s: float = 0.02,
                 with_ledger: bool = True, queue_max: int = QUEUE_MAX,
                 supervision: Runner | None = None, plausibility: Settings | None = None,
                 rejection_limits: rejects.RejectionLimits = rejects.DEFAULT_LIMITS,
                 audit: AuditSettings | None = None, gate: GateControl | None = None) -> None:
        self.db_path = db_path
        self.site = site
        self.broker = broker
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.with_ledger = with_ledger  # off only to measure what the ledger costs
        self.stats = IngestStats(queue_max=queue_max)
        self.metrics = IngestMetrics()  # latencies and stored kinds, for /metrics
        self.rejection_limits = rejection_limits
        self.supervision = supervision if supervision is not None else Runner()
        # out-gate decisions in the batch, commands sent after it (controller/gate_service.py)
        self.gate = gate if gate is not None else GateControl()
        # weighings placed on their weighbridge by the plate's tracker (controller/cross_sensor.py)
        self.cross_sensor = CrossSensor()
        # the site's plate format and clock tolerances; a bad one stops the start here
        self.plausibility = plausibility or Settings.from_env()
        self._store = open_store(db_path)
        self.client_id = (broker.client_id or broker.username
                          or f"portwatch-{site}-{views.store_id(self._store)}")
        self._keys = registry.secrets_by_device(self._store)
        self._keys_stamp = registry.keys_stamp(self._store)
        # one thread owns the writer connection: commits never block the event loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pw-writer")
        self._client: aiomqtt.Client | None = None
        self._speaks: dict[str, str] = {}  # device id -> key id of its last accepted message
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=queue_max)
        self._unknown_checked: set[str] = set()
        self._retired = device_rows.decommissioned_ids(self._store)
        self._connected_once_this_round = False
        # device -> the limits its last `limits` ledger entry holds: one entry per change
        self._recorded_limits: dict[str, dict[str, Any]] = {}
        # served rows checked against the ledger at start and continually (a bad setting
        # stops the start here)
        self.audit = AuditWatch(db_path, audit or AuditSettings.from_env())

    # -- verification --------------------------------------------------------------------

    def _verify(self, msg: Received) -> Verdict:
        device_id = topics_device(msg.topic)
        if device_id is not None and device_id not in self._keys \
                and device_id not in self._unknown_checked:
            # provisioned since we loaded? look once per unknown id, not per message; a
            # flood of made-up ids must not grow this set without bound: forget and start over
            if len(self._unknown_checked) >= UNKNOWN_IDS_MAX:
                self._unknown_checked.clear()
            self._unknown_checked.add(device_id)
            if device_rows.exists(self._store, device_id):
                self._keys = registry.secrets_by_device(self._store)
        verdict = check_message(msg, site=self.site, keys=self._keys)
        if isinstance(verdict, Rejected) and verdict.reason == "unknown_device" and \
                device_id in self._retired:
            return Rejected(msg, "decommissioned", f"device {device_id!r} was decommissioned; "
                            "its messages are refused", device_id)
        return verdict

    def _reload_keys_if_changed(self) -> None:
        """Pick up keys provisioned, rotated or retired by another connection (API, CLI)."""
        stamp = registry.keys_stamp(self._store)
        if stamp != self._keys_stamp:
            self._keys, self._keys_stamp = registry.secrets_by_device(self._store), stamp
            self._retired = device_rows.decommissioned_ids(self._store)
            self._unknown_checked.clear()

    def _commit(self, verdicts: list[Verdict]) -> tuple[BatchResult, float]:
        started = time.perf_counter()
        result = commit_batch(self._store.conn, verdicts, with_ledger=self.with_ledger,
                              supervise=self._supervise, limits=self.rejection_limits,
                              plausibility=self.plausibility,
                              recorded_limits=self._recorded_limits)
        return result, (time.perf_counter() - started) * 1000

    def _supervise(self, conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[object]:
        """The rules, then the out-gate decisions, inside the batch's transaction; then the
        calibration and mass-balance checks (a departure made by the gate counts). Each
        step's time is observed (portwatch_supervision_duration_seconds)."""
        timed = self.metrics.timed
        return [*timed("rules", lambda: self.supervision(conn, facts)),
                *timed("gate", lambda: self.gate.supervise(conn, facts)),
                *timed("cross_sensor", lambda: self.cross_sensor.supervise(conn, facts)),
                *timed("calibration", lambda: calibration_watch.supervise(conn, facts)),
                *timed("mass_balance", lambda: mass_balance.supervise(conn, facts))]

    async def _send_command(self, row: dict[str, Any]) -> bool:
        """Publish one stored command (QoS 1) signed with the device's key; False when
        there is no link or no key now (the gate's sender tries again)."""
        client = self._client
        found = self._downlink_key(row["device_id"])
        if client is None or found is None:
            return False
        topic, wire = commands.wire(self.site, row, found[0], found[1].secret, now_ms())
        await client.publish(topic, wire, qos=1)
        return True

    # -- the link ------------------------------------------------------------------------

    def _summarize(self) -> int:
        """Close the ended windows of rejection buckets (in the writer thread)."""
        with transaction(self._store.conn) as conn:
            return rejects.summarize(conn, now_ms())

    async def summaries(self) -> None:
        """Put the summaries of closed rejection windows in the ledger, forever.

        Looked at a few times per window (at least once a minute) and once at start, so a
        window that closed while the controller was down is summarised when it is back; the
        mark in the store, written with the entry, keeps a summary from being made twice.
        """
        every_s = min(60.0, max(0.2, self.rejection_limits.window_s / 5))
        loop = asyncio.get_running_loop()
        while True:
            try:
                n = await loop.run_in_executor(self._executor, self._summarize)
                self.stats.rejection_summaries += n
            except (sqlite3.Error, ControllerError) as exc:
                # the store is busy or altered: the counts stay in it, the next pass retries
                log.error("rejection summaries not written: %s", exc)
            await asyncio.sleep(every_s)

    async def run(self) -> None:
        """Connect, ingest and reconnect forever (until cancelled)."""
        helpers = [asyncio.create_task(self.summaries(), name="rejection-summaries"),
                   asyncio.create_task(self.audit.run(), name="audit"),
                   asyncio.create_task(self.gate.run(self._store.conn, self._executor,
                                                     self._send_command), name="commands"),
                   asyncio.create_task(self.cross_sensor.run(self._store.conn, self._executor),
                                       name="cross-sensor")] \
            if self.with_ledger else []
        try:
            await self._run()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_S
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self._connected_once_this_round:
                    delay = RECONNECT_MIN_S  # the link was up: start the back-off afresh
                self.stats.connected = False
                self.stats.last_error = str(exc)
                log.warning("%s; retrying in %.1f s", self._explain(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
            except Exception as exc:  # a bug in a batch's step must not stop ingest unseen
                # the batch's transaction rolled back and no ack covers it: the devices
                # resend it after the reconnect (every device gets a resync)
                self.stats.connected = False
                self.stats.batch_failures += 1
                self.stats.last_error = f"a batch failed: {exc!r}"
                log.exception("a batch failed and was not stored (%r): reconnecting in %.1f s; "
                              "the devices resend it. If this repeats, the controller's log "
                              "above names the step", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)

    def _explain(self, exc: aiomqtt.MqttError) -> str:
        """What went wrong with the broker, in words an operator can act on."""
        where = f"broker {self.broker.host}:{self.broker.port}"
        rc = getattr(exc, "rc", None)
        code = getattr(rc, "value", rc)
        if isinstance(code, int) and code in _LOGIN_REFUSED:
            return (f"{where} refused the login of {self.broker.username or '(anonymous)'}: "
                    f"{_LOGIN_REFUSED[code]}. Regenerate its files with `portwatch broker "
                    "config` and reload the broker, or pass --broker-user/--broker-password")
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # an impostor, or a stale certificate
            return (f"{where}: its TLS certificate does not chain to the site CA "
                    f"{self.broker.ca} or does not name {self.broker.host} ({exc}); nothing "
                    "was sent to it. Issue its certificate with `portwatch broker config "
                    f"--tls-host {self.broker.host}` and reload the broker, or pass "
                    "--broker-ca with the CA that signed it")
        if self._connected_once_this_round:
            return f"lost the link to {where} ({exc})"
        return f"{where} unreachable ({exc})"

    async def _session(self) -> None:
        self._connected_once_this_round = False
        client = aiomqtt.Client(
            self.broker.host, self.broker.port, username=self.broker.username,
            password=self.broker.password, identifier=self.client_id,
            clean_session=False, keepalive=15, max_queued_incoming_messages=100_000,
            tls_context=tls_context(self.broker.ca),
        )
        async with client:
            self._client = client
            self._connected_once_this_round = True
            self.stats.connected = True
            self.stats.connects += 1
            log.info("ingest connected to %s:%s as %s", self.broker.host, self.broker.port,
                     self.client_id)
            for channel in ("evt", "tele", "state", "cmdack"):
                await client.subscribe(topics.uplink_filter(self.site, channel), qos=1)
            await self._announce_all()
            tasks = [asyncio.create_task(self._read(client)),
                     asyncio.create_task(self._batches())]
            try:
                # the reader ends when the link does; the batcher only on an error
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raise what ended it, for run() to reconnect
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._client = None
                self.stats.connected = False

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
            self.offer(Received(str(message.topic), bytes(raw), now_ms()))
        raise aiomqtt.MqttError("message stream ended")

    def offer(self, msg: Received) -> bool:
        """Queue one received message; False (counted, logged) when the queue is full."""
        try:
            self._queue.put_nowait(msg)
        except asyncio.QueueFull:
            self.stats.overflow_dropped += 1
            n = self.stats.overflow_dropped
            if n & (n - 1) == 0:  # 1, 2, 4, 8, …: a flood is visible without flooding the log
                log.warning("ingest queue full (%d messages): dropped %d so far (latest on %s); "
                            "devices resend what no ack covers, so nothing is lost, but the "
                            "store is falling behind", self._queue.maxsize, n, msg.topic)
            return False
        depth = self._queue.qsize()
        self.stats.queue_depth = depth
        self.stats.queue_peak = max(self.stats.queue_peak, depth)
        return True

    async def _batches(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            first = await queue.get()
            batch = [first]
            deadline = loop.time() + self.batch_wait_s
            while len(batch) < self.batch_max:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), timeout))
                except TimeoutError:
                    break
            self.stats.queue_depth = queue.qsize()
            await self._process(batch)

    async def _process(self, batch: list[Received]) -> None:
        self.stats.received += len(batch)
        self._reload_keys_if_changed()
        verdicts = [self._verify(m) for m in batch]
        for v in verdicts:
            if isinstance(v, Accepted):
                self._speaks[v.device_id] = v.key_id
        loop = asyncio.get_running_loop()
        result, commit_ms = await loop.run_in_executor(self._executor, self._commit, verdicts)
        self.stats.add(result.stored, result.telemetry, result.findings, result.rejected,
                       len(batch), commit_ms)
        self.metrics.batch(result.stored_by_kind, commit_ms / 1000,
                           sum(len(m.payload) for m in batch))
        s = self.supervision.stats
        self.stats.supervision = {"facts": s.facts, "findings": s.findings,
                                  "failures": dict(s.failures), "last_failure": s.last_failure}
        acks = [(d, upto, False) for d, upto in result.watermarks.items()]
        acks += [(d, device_rows.committed_seq(self._store, d), True) for d in result.births
                 if d not in result.watermarks]
        # concurrently, a few at a time: one broker round trip per device would make
        # ack latency grow with the number of devices in the batch
        for i in range(0, len(acks), ACK_CONCURRENCY):
            await asyncio.gather(*(self._ack(d, upto, resync=r)
                                   for d, upto, r in acks[i:i + ACK_CONCURRENCY]))

    async def _announce_all(self) -> None:
        """On (re)connect, tell every device where the store stands, so it resends the rest."""
        for row in device_rows.all_rows(self._store, site=self.site):
            if row.get("decommissioned_ms") is None:
                await self._ack(row["device_id"], row["committed_seq"], resync=True)

    def _downlink_key(self, device_id: str) -> tuple[str, DeviceKey] | None:
        """(key id, key) to sign what goes to the device (acks, commands), or None."""
        keys = self._keys.get(device_id)
        if not keys:
            return None
        # the key the device last spoke (an agent still on its old key during the grace
        # must be able to check its acks and drain its outbox), else the newest
        key_id = self._speaks.get(device_id, "")
        key = keys.get(key_id)
        if key is None or (key.valid_until_ms is not None and key.valid_until_ms < now_ms()):
            key_id, key = newest_key(keys)
        return key_id, key

    async def _ack(self, device_id: str, upto: int, *, resync: bool) -> None:
        client = self._client
        found = self._downlink_key(device_id)
        if client is None or found is None:
            return
        key_id, key = found
        topic = topics.topic(self.site, device_id, "ack")
        fields = envelope.make(device_id, 0, upto, now_ms(), "ack",
                               {"upto": upto, "resync": resync})
        await client.publish(topic, envelope.seal(key.secret, key_id, topic, fields), qos=1,
                             retain=True)
        self.stats.acks_published += 1

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.audit.close()
        self._store.close()


def topics_device(topic: str) -> str | None:
    """The device id in a topic, or None when it is not a portwatch topic."""
    try:
        return topics.parse(topic)[1]
    except topics.TopicError:
        return None
