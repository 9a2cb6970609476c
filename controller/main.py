"""Run the controller: ingest and the API in one asyncio loop.

Before it touches the broker it makes sure it can serve: the API port must be free and no
other controller may hold the store (a lock file next to it). A second controller started
by mistake therefore stops with one line saying why, instead of logging into the broker
and knocking the running one off.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from controller.api.app import create_app
from controller.calibration_watch import run_due_ticks
from controller.errors import Conflict
from controller.firmware_rollout import run_rollouts
from controller.ingest.rejects import DEFAULT_LIMITS, RejectionLimits
from controller.ingest.service import BrokerSettings, IngestService
from controller.ledger import LedgerError, checkpoint
from controller.office_feed import feed_settings_from_env
from controller.office_publisher import OfficePublisher
from controller.storage import now_ms, open_store
from controller.trip_ticks import run_ticks
from controller.witness_push import PushSettings, WitnessPusher

log = logging.getLogger("portwatch.controller")


async def checkpoints(db_path: Path, site: str, every_s: float) -> None:
    """Sign a ledger checkpoint every ``every_s`` seconds while the ledger grows."""
    origin = checkpoint.origin_for(site)
    while True:
        await asyncio.sleep(every_s)
        store = open_store(db_path, migrate=False)
        try:
            # read each time: after `portwatch ledger rotate-key` the file holds the new key
            signer = checkpoint.log_signer(db_path, origin)
            cp = checkpoint.maybe_create(store.conn, signer, now_ms(), int(every_s * 1000))
            if cp is not None:
                log.info("ledger checkpoint: size %d", cp.size)
        except LedgerError as exc:  # an altered store: say so loudly, keep serving
            log.error("ledger checkpoint refused: %s", exc)
        finally:
            store.close()


def check_port_free(host: str, port: int) -> None:
    """Conflict when something already listens on (host, port)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise Conflict(f"the API port {host}:{port} is already in use (another "
                               "controller?): stop it, or pass --api with a free port") from exc
            raise Conflict(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


@contextlib.contextmanager
def store_lock(db_path: Path) -> Iterator[None]:
    """Hold ``<db>.controller.lock`` while serving: one controller per store."""
    path = Path(str(db_path) + ".controller.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise Conflict(f"another controller (pid {holder}) is serving {db_path}: stop it "
                           "first; two controllers on one store would share its broker "
                           "session") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


async def serve(*, db_path: Path, site: str, broker: BrokerSettings, api_host: str,
                api_port: int, checkpoint_every_s: float = 60.0,
                rejection_limits: RejectionLimits = DEFAULT_LIMITS,
                witness_push: PushSettings | None = None, metrics_public: bool = False) -> None:
    """Serve until cancelled or interrupted; Conflict before anything starts if the API
    port or the store is taken. ``metrics_public``: /metrics answers without a token."""
    check_port_free(api_host, api_port)
    with store_lock(db_path):
        ingest = IngestService(db_path=db_path, site=site, broker=broker,
                               rejection_limits=rejection_limits)
        app = create_app(db_path=db_path, site=site, ingest_stats=ingest.stats,
                         ingest_metrics=ingest.metrics, metrics_public=metrics_public)
        config = uvicorn.Config(app, host=api_host, port=api_port, log_level="warning",
                                lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(ingest.run(), name="ingest")
        timer = asyncio.create_task(checkpoints(db_path, site, checkpoint_every_s),
                                    name="checkpoints")
        pusher = asyncio.create_task(
            WitnessPusher(db_path, witness_push or PushSettings()).run(), name="witness-push")
        feed = OfficePublisher(db_path=db_path, site=site, broker=broker,
                               settings=feed_settings_from_env())
        feeder = asyncio.create_task(feed.run(), name="office-feed")
        ticker = asyncio.create_task(run_ticks(db_path), name="trip-ticks")
        due = asyncio.create_task(run_due_ticks(db_path), name="calibration-due")
        rollouts = asyncio.create_task(run_rollouts(db_path), name="firmware-rollouts")
        log.info("controller for site %s: API http://%s:%s/docs, broker %s:%s as %s, store %s",
                 site, api_host, api_port, broker.host, broker.port, ingest.client_id, db_path)
        try:
            await server.serve()
        finally:
            for t in (task, timer, pusher, feeder, ticker, due, rollouts):
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            ingest.close()
            feed.close()
