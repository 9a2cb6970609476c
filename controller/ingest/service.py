"""The imperative shell of ingest: aiomqtt in, batched SQLite commits, acks out.

aiomqtt acknowledges QoS 1 to the broker on receipt, before our commit (its issue
#345), so a crash mid-batch loses what the broker already handed over. Delivery
is made loss-free one level up: after each durable commit the controller
publishes, signed and retained, "committed up to seq N" to each device on
``pw/v1/<site>/<dev>/ack``, and the device keeps every event in its outbox until
then, resending what is not covered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from controller import registry, store
from controller.ingest.verify import Accepted, Received, Verdict, check_message
from controller.ingest.writer import BatchResult, commit_batch
from protocols import envelope, topics

log = logging.getLogger("portwatch.ingest")
ACK_CONCURRENCY = 8  # aiomqtt warns past 10 pending publishes


@dataclass(slots=True)
class IngestStats:
    """Counters since the controller started (persisted figures come from the store)."""

    received: int = 0
    stored: int = 0
    telemetry: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    last_batch_size: int = 0
    max_commit_ms: float = 0.0
    acks_published: int = 0
    connected: bool = False
    connects: int = 0
    last_error: str = ""

    def add(self, result: BatchResult, size: int, commit_ms: float) -> None:
        self.stored += result.stored
        self.telemetry += result.telemetry
        for reason, n in result.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n
        self.batches += 1
        self.last_batch_size = size
        self.max_commit_ms = max(self.max_commit_ms, commit_ms)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How the controller reaches the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "portwatch-controller"


class IngestService:
    """Subscribe to a site's uplink, commit in batches, acknowledge after commit."""

    def __init__(self, *, db_path: Path, site: str, broker: BrokerSettings,
                 batch_max: int = 500, batch_wait_s: float = 0.02,
                 with_ledger: bool = True) -> None:
        self.db_path = db_path
        self.site = site
        self.broker = broker
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.with_ledger = with_ledger  # off only to measure what the ledger costs
        self.stats = IngestStats()
        self._db = store.connect(db_path)
        self._keys = registry.secrets_by_device(self._db)
        self._keys_stamp = registry.keys_stamp(self._db)
        # one thread owns the writer connection: commits never block the event loop
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pw-writer")
        self._client: aiomqtt.Client | None = None
        self._speaks: dict[str, str] = {}  # device id -> key id of its last accepted message

    def _verify(self, msg: Received) -> Verdict:
        device_id = topics_device(msg.topic)
        if device_id is not None and device_id not in self._keys and self._registered(device_id):
            self._keys = registry.secrets_by_device(self._db)  # provisioned since we loaded
        return check_message(msg, site=self.site, keys=self._keys)

    def _reload_keys_if_changed(self) -> None:
        """Pick up keys provisioned, rotated or retired by another connection (API, CLI)."""
        stamp = registry.keys_stamp(self._db)
        if stamp != self._keys_stamp:
            self._keys, self._keys_stamp = registry.secrets_by_device(self._db), stamp

    def _registered(self, device_id: str) -> bool:
        return bool(self._db.execute("SELECT 1 FROM devices WHERE device_id=?",
                                     [device_id]).fetchone())

    def _commit(self, verdicts: list[Verdict]) -> tuple[BatchResult, float]:
        started = time.perf_counter()
        result = commit_batch(self._db.conn, verdicts, with_ledger=self.with_ledger)
        return result, (time.perf_counter() - started) * 1000

    async def run(self) -> None:
        """Connect, ingest and reconnect forever (until cancelled)."""
        delay = 0.2
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.stats.connected = False
                self.stats.last_error = str(exc)
                log.warning("broker %s:%s unreachable (%s); retrying in %.1fs",
                            self.broker.host, self.broker.port, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                delay = 0.2

    async def _session(self) -> None:
        client = aiomqtt.Client(
            self.broker.host, self.broker.port, username=self.broker.username,
            password=self.broker.password, identifier=f"{self.broker.client_id}-{self.site}",
            clean_session=False, keepalive=15, max_queued_incoming_messages=100_000,
        )
        async with client:
            self._client = client
            self.stats.connected = True
            self.stats.connects += 1
            log.info("ingest connected to %s:%s", self.broker.host, self.broker.port)
            for channel in ("evt", "tele", "state"):
                await client.subscribe(topics.uplink_filter(self.site, channel), qos=1)
            await self._announce_all()
            queue: asyncio.Queue[Received] = asyncio.Queue()
            tasks = [asyncio.create_task(self._read(client, queue)),
                     asyncio.create_task(self._batches(queue))]
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

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[Received]) -> None:
        async for message in client.messages:
            payload = message.payload
            raw = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
            queue.put_nowait(Received(str(message.topic), bytes(raw), store.now_ms()))
        raise aiomqtt.MqttError("message stream ended")

    async def _batches(self, queue: asyncio.Queue[Received]) -> None:
        loop = asyncio.get_running_loop()
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
        self.stats.add(result, len(batch), commit_ms)
        acks = [(d, upto, False) for d, upto in result.watermarks.items()]
        acks += [(d, self._committed(d), True) for d in result.births
                 if d not in result.watermarks]
        # concurrently, a few at a time: one broker round trip per device would make
        # ack latency grow with the number of devices in the batch
        for i in range(0, len(acks), ACK_CONCURRENCY):
            await asyncio.gather(*(self._ack(d, upto, resync=r)
                                   for d, upto, r in acks[i:i + ACK_CONCURRENCY]))

    def _committed(self, device_id: str) -> int:
        row = self._db.execute("SELECT committed_seq FROM devices WHERE device_id=?",
                               [device_id]).fetchone()
        return int(row[0]) if row else 0

    async def _announce_all(self) -> None:
        """On (re)connect, tell every device where the store stands, so it resends the rest."""
        for row in self._db.query("SELECT device_id, committed_seq FROM devices WHERE site=?",
                                  [self.site]):
            await self._ack(row["device_id"], row["committed_seq"], resync=True)

    async def _ack(self, device_id: str, upto: int, *, resync: bool) -> None:
        client = self._client
        keys = self._keys.get(device_id)
        if client is None or not keys:
            return
        # answer in the key the device last spoke (an agent still on its old key during the
        # grace must be able to check its acks and drain its outbox), else the newest
        key_id = self._speaks.get(device_id, "")
        key = keys.get(key_id)
        if key is None or (key.valid_until_ms is not None and key.valid_until_ms < store.now_ms()):
            key_id, key = registry.newest_key(keys)
        topic = topics.topic(self.site, device_id, "ack")
        fields = envelope.make(device_id, 0, upto, store.now_ms(), "ack",
                               {"upto": upto, "resync": resync})
        await client.publish(topic, envelope.seal(key.secret, key_id, topic, fields), qos=1,
                             retain=True)
        self.stats.acks_published += 1

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._db.close()


def topics_device(topic: str) -> str | None:
    """The device id in a topic, or None when it is not a portwatch topic."""
    try:
        return topics.parse(topic)[1]
    except topics.TopicError:
        return None
