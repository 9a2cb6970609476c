"""The office feed's imperative shell: send due trip records, take acks, watch for offices
that stopped acking.

A second MQTT client of the controller, under the feed's own login (office_accounts.py),
so it neither shares nor ousts the ingest's session. It polls ``office_outbox`` every
``poll_ms`` for due rows (records the trips code queued in its transactions, and unacked
ones whose back-off ran out), signs each record with the log key on its first send and keeps
the signed note, so a re-send is the same bytes. Store work runs on one thread of its own:
the event loop never waits on SQLite.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from controller import office_feed
from controller.ingest.service import BrokerSettings, tls_context
from controller.ledger import checkpoint, logkey, note
from controller.ledger.errors import LedgerError
from controller.office_accounts import feed_credentials
from controller.office_record import (
    TRIP,
    TRIPACK,
    RecordError,
    office_filter,
    office_of,
    office_topic,
    parse_ack,
    sign,
)
from controller.storage import Store, now_ms, open_store
from controller.storage import offices as rows
from controller.storage import trip_records as reads

log = logging.getLogger("portwatch.office_feed")
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 5.0


@dataclass
class FeedStats:
    """Counters since start (logged; the store has the durable state)."""

    sent: int = 0
    acks: int = 0
    bad_acks: int = 0
    connected: bool = False
    last_error: str = ""
    alerts: list[str] = field(default_factory=list)


class OfficePublisher:
    """Send queued trip records to their offices until cancelled."""

    def __init__(self, *, db_path: Path, site: str, broker: BrokerSettings,
                 settings: office_feed.FeedSettings | None = None) -> None:
        self.db_path = db_path
        self.site = site
        self.broker = broker
        self.settings = settings or office_feed.FeedSettings()
        self.stats = FeedStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pw-office")
        self._store: Store | None = None

    # -- the store, on its own thread ----------------------------------------------------

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _conn_store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.db_path, migrate=False)
        return self._store

    def _any_office(self) -> bool:
        return bool(rows.live_offices(self._conn_store().conn))

    def _credentials(self) -> tuple[str, str]:
        return feed_credentials(self._conn_store())

    def _due(self) -> list[tuple[str, int, str]]:
        """(office, seq, signed note) of each due record, signing those never sent."""
        store = self._conn_store()
        due = rows.due(store.conn, now_ms())
        if not due:
            return []
        signer = None
        out = []
        for r in due:
            signed = r["signed"]
            if signed is None:
                if signer is None:
                    signer = self._signer(store)
                signed = sign(str(r["record"]), signer)
                with store.transaction() as conn:
                    rows.set_signed(conn, r["office_id"], r["office_seq"], signed)
            out.append((str(r["office_id"]), int(r["office_seq"]), str(signed)))
        return out

    def _signer(self, store: Store) -> note.Signer:
        """The log key, refused (LedgerError) when it is not the key pinned in the store:
        records signed by another key would fail every office's check."""
        origin = reads.origin(store.conn) or checkpoint.origin_for(self.site)
        signer = checkpoint.log_signer(self.db_path, origin)
        pinned = logkey.pinned(store.conn)
        if pinned is not None and pinned != signer.verifier.vkey:
            raise LedgerError(f"the key file holds {signer.verifier.vkey}, not the log key "
                              f"pinned in the store ({pinned}): put the log's key back; trip "
                              "records wait unsigned until then")
        return signer

    def _sent(self, office_id: str, office_seq: int) -> None:
        with self._conn_store().transaction() as conn:
            sent = now_ms()
            delay = office_feed.retry_delay_ms(rows.attempts(conn, office_id, office_seq) + 1,
                                               self.settings)
            rows.mark_sent(conn, office_id, office_seq, sent_ms=sent, next_ms=sent + delay)

    def _ack(self, topic: str, payload: bytes) -> int:
        office_id = office_of(topic, TRIPACK)
        trip_id, version = parse_ack(payload)
        return office_feed.record_ack(self._conn_store().conn, office_id, trip_id, version,
                                      now_ms())

    def _reachability(self) -> list[str]:
        changed = office_feed.check_reachability(self._conn_store().conn, now_ms(),
                                                 self.settings)
        return [f"{a.code} {'raised' if a.active else 'cleared'} for {a.device_id}"
                for a in changed]

    # -- the loops -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, send and reconnect forever; check reachability whatever the link."""
        watch = asyncio.create_task(self._watch(), name="office-reachability")
        delay = RECONNECT_MIN_S
        try:
            while True:
                started = time.monotonic()
                if not await self._db(self._any_office):
                    # no office: no login in the broker's files either; look again soon
                    await asyncio.sleep(1.0)
                    continue
                try:
                    await self._session()
                except aiomqtt.MqttError as exc:
                    self.stats.connected = False
                    self.stats.last_error = str(exc)
                    if time.monotonic() - started > 10:
                        delay = RECONNECT_MIN_S
                    log.warning("office feed: broker %s:%s: %s; retrying in %.1f s",
                                self.broker.host, self.broker.port, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
                except Exception as exc:  # a bug or a store error: logged, the feed goes on
                    self.stats.last_error = repr(exc)
                    log.exception("office feed failed; starting again in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RECONNECT_MAX_S)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            try:
                for line in await self._db(self._reachability):
                    log.warning("office feed: %s", line)
                    self.stats.alerts.append(line)
            except Exception:  # a rule that raises is logged; the feed goes on
                log.exception("office feed: reachability check failed")
            await asyncio.sleep(max(self.settings.poll_ms, 1000) / 1000)

    async def _session(self) -> None:
        user, password = await self._db(self._credentials)
        client = aiomqtt.Client(self.broker.host, self.broker.port, username=user,
                                password=password, identifier=user, clean_session=True,
                                keepalive=15, tls_context=tls_context(self.broker.ca))
        async with client:
            self.stats.connected = True
            log.info("office feed connected to %s:%s as %s", self.broker.host,
                     self.broker.port, user)
            await client.subscribe(office_filter(self.site, TRIPACK), qos=1)
            tasks = [asyncio.create_task(self._read(client)),
                     asyncio.create_task(self._send(client))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self.stats.connected = False

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                n = await self._db(self._ack, str(message.topic), payload)
                self.stats.acks += 1 if n else 0
            except RecordError as exc:  # counted and logged, never fatal
                self.stats.bad_acks += 1
                log.warning("office feed: ack on %s refused: %s", message.topic, exc)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            try:
                due = await self._db(self._due)
            except LedgerError as exc:  # the log key refused (replaced file): say it, wait
                log.error("office feed: cannot sign trip records: %s", exc)
                due = []
            for office_id, seq, signed in due:
                # counted as sent before the publish: the office's ack may come back before
                # the publish returns, and an ack counts only for a record sent
                await self._db(self._sent, office_id, seq)
                await client.publish(office_topic(self.site, office_id, TRIP),
                                     signed.encode(), qos=1)
                self.stats.sent += 1
            await asyncio.sleep(self.settings.poll_ms / 1000)

    def close(self) -> None:
        """Release the store (after the task was cancelled)."""
        def _close() -> None:
            if self._store is not None:
                self._store.close()
                self._store = None
        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)
