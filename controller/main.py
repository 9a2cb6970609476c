"""Run the controller: ingest and the API in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import uvicorn

from controller import store
from controller.api.app import create_app
from controller.ingest.service import BrokerSettings, IngestService
from controller.ledger import LedgerError, checkpoint

log = logging.getLogger("portwatch.controller")


async def checkpoints(db_path: Path, site: str, every_s: float) -> None:
    """Sign a ledger checkpoint every ``every_s`` seconds while the ledger grows."""
    signer = checkpoint.log_signer(db_path, checkpoint.origin_for(site))
    while True:
        await asyncio.sleep(every_s)
        db = store.connect(db_path)
        try:
            cp = checkpoint.maybe_create(db.conn, signer, store.now_ms(), int(every_s * 1000))
            if cp is not None:
                log.info("ledger checkpoint: size %d", cp.size)
        except LedgerError as exc:  # an altered store: say so loudly, keep serving
            log.error("ledger checkpoint refused: %s", exc)
        finally:
            db.close()


async def serve(*, db_path: Path, site: str, broker: BrokerSettings, api_host: str,
                api_port: int, checkpoint_every_s: float = 60.0) -> None:
    """Serve until cancelled or interrupted."""
    ingest = IngestService(db_path=db_path, site=site, broker=broker)
    app = create_app(db_path=db_path, site=site, ingest_service=ingest)
    config = uvicorn.Config(app, host=api_host, port=api_port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(ingest.run(), name="ingest")
    timer = asyncio.create_task(checkpoints(db_path, site, checkpoint_every_s), name="checkpoints")
    log.info("controller for site %s: API http://%s:%s/docs, broker %s:%s, store %s",
             site, api_host, api_port, broker.host, broker.port, db_path)
    try:
        await server.serve()
    finally:
        for t in (task, timer):
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        ingest.close()
