"""Run the controller: ingest and the API in one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import uvicorn

from controller.api.app import create_app
from controller.ingest.service import BrokerSettings, IngestService

log = logging.getLogger("portwatch.controller")


async def serve(*, db_path: Path, site: str, broker: BrokerSettings, api_host: str,
                api_port: int) -> None:
    """Serve until cancelled or interrupted."""
    ingest = IngestService(db_path=db_path, site=site, broker=broker)
    app = create_app(db_path=db_path, site=site, ingest_service=ingest)
    config = uvicorn.Config(app, host=api_host, port=api_port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(ingest.run(), name="ingest")
    log.info("controller for site %s: API http://%s:%s/docs, broker %s:%s, store %s",
             site, api_host, api_port, broker.host, broker.port, db_path)
    try:
        await server.serve()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        ingest.close()
