"""The pipelines ``portwatch bench`` measures, each behind one small interface.

``ingest`` is the real controller ingest (``IngestService`` in this process's event
loop: verify, dedupe, batch commit, signed ack). ``raw`` is the baseline: a bare
paho-mqtt subscriber that only inserts what it receives with ``executemany`` (no
HMAC, no JSON), so the controller's figure can be read as a fraction of what this
machine can do at all. Another variant (the ledger on or off, a PostgreSQL store)
is one more class registered in :data:`PIPELINES`.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from controller.ingest.service import BrokerSettings, IngestService
from controller.storage import open_store, views
from protocols import topics
from tools.procs import wait_until


class BenchError(RuntimeError):
    """The benchmark could not run; the message says where to look."""


@dataclass(frozen=True, slots=True)
class PhaseContext:
    """Where one pipeline runs: its broker, site, store file and batching."""

    name: str  # the phase's name: its directory, device-id prefix and client ids
    broker_port: int
    site: str
    db_path: Path
    devices: int
    batch_max: int
    batch_wait_s: float


@dataclass(slots=True)
class PipelineCounts:
    """What a pipeline durably stored, read back after it stopped."""

    stored: int
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    last_commit: float | None = None  # wall clock of the last commit, when the pipeline knows


class Pipeline(Protocol):
    """One way of getting the agents' events from the broker into SQLite."""

    name: str
    acks: bool  # True: agents wait for the signed ack (the durable signal) and resend
    durable_signal: str

    async def start(self) -> None: ...

    def stored(self) -> int: ...

    async def stop(self) -> PipelineCounts: ...


class IngestPipeline:
    """The controller's real ingest, run in this event loop."""

    name = "ingest"
    with_ledger = True
    acks = True
    durable_signal = ("the agent receives the controller's signed ack on "
                      "pw/v1/<site>/<dev>/ack, published only after the SQLite commit")

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        self.service = IngestService(
            db_path=ctx.db_path, site=ctx.site,
            broker=BrokerSettings(port=ctx.broker_port, client_id=f"bench-{ctx.name}"),
            batch_max=ctx.batch_max, batch_wait_s=ctx.batch_wait_s,
            with_ledger=self.with_ledger)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.task = asyncio.create_task(self.service.run(), name="bench-ingest")
        deadline = time.monotonic() + 20
        # the first acks (one per device, after subscribing) say the ingest is listening
        while self.service.stats.acks_published < self.ctx.devices:
            if self.task.done() or time.monotonic() > deadline:
                raise BenchError(f"the ingest did not subscribe within 20 s: {self.service.stats}")
            await asyncio.sleep(0.02)

    def stored(self) -> int:
        return self.service.stats.stored

    async def stop(self) -> PipelineCounts:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        stats = self.service.stats
        self.service.close()
        with open_store(self.ctx.db_path) as db:
            stored = views.counts(db)["events"]
        rejected = {k: v for k, v in stats.rejected.items() if k != "duplicate"}
        return PipelineCounts(stored, stats.rejected.get("duplicate", 0), rejected)


class RawBaseline:
    """paho-mqtt 2.x QoS 1 subscriber + batched ``executemany``: the machine's ceiling."""

    name = "raw"
    acks = False
    durable_signal = "the baseline subscriber's SQLite commit (WAL, synchronous=NORMAL)"

    def __init__(self, ctx: PhaseContext) -> None:
        self.ctx = ctx
        self.cond = threading.Condition()
        self.buffer: list[tuple[str, bytes, int]] = []
        self.rows = 0
        self.last_commit: float | None = None
        self.running = True
        self.subscribed = threading.Event()
        self.db = self._open(ctx.db_path.with_name("raw.db"))
        self.writer = threading.Thread(target=self._write_loop, name="bench-raw-writer")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{ctx.name}",
                                  clean_session=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS raw (topic TEXT, payload BLOB, received_ms INT)")
        return conn

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        client.subscribe(topics.uplink_filter(self.ctx.site, "evt"), qos=1)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.buffer.append((msg.topic, bytes(msg.payload), time.time_ns() // 1_000_000))
            if len(self.buffer) >= self.ctx.batch_max:
                self.cond.notify()

    def _write_loop(self) -> None:
        while True:
            with self.cond:
                if not self.buffer and self.running:
                    self.cond.wait(self.ctx.batch_wait_s)
                batch, self.buffer = self.buffer, []
                if not batch and not self.running:
                    return
            if batch:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT INTO raw VALUES (?,?,?)", batch)
                self.db.execute("COMMIT")
                self.rows += len(batch)
                self.last_commit = time.time()

    async def start(self) -> None:
        self.writer.start()
        self.client.connect("127.0.0.1", self.ctx.broker_port, keepalive=30)
        self.client.loop_start()
        await asyncio.to_thread(wait_until, self.subscribed.is_set, 20.0,
                                what="the raw baseline to subscribe")

    def stored(self) -> int:
        return self.rows

    async def stop(self) -> PipelineCounts:
        self.client.disconnect()
        self.client.loop_stop()
        with self.cond:
            self.running = False
            self.cond.notify()
        self.writer.join()
        stored = int(self.db.execute("SELECT count(*) FROM raw").fetchone()[0])
        self.db.close()
        return PipelineCounts(stored, last_commit=self.last_commit)


PipelineFactory = Callable[[PhaseContext], Pipeline]

class IngestWithoutLedgerPipeline(IngestPipeline):
    """The same ingest with the ledger append switched off: what the ledger costs."""

    name = "ingest-no-ledger"
    with_ledger = False


PIPELINES: dict[str, PipelineFactory] = {
    "ingest": IngestPipeline,
    "ingest-no-ledger": IngestWithoutLedgerPipeline,
}
"""Pipeline variants ``portwatch bench --pipeline NAME`` can measure against the baseline."""

BASELINE: PipelineFactory = RawBaseline
