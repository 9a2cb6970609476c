"""The controller's clock for the trip rules: every few seconds, a ``tick`` for each trip in
transit (controller.trips.tick), so a tracker gone quiet or a truck not arrived by its
deadline is noticed while no fix arrives. Started by the controller (controller/main.py).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path

from controller import trips
from controller.errors import ControllerError
from controller.storage import now_ms, open_store
from controller.supervision.runner import Runner

log = logging.getLogger("portwatch.trips")
EVERY_S = 5.0


def tick_once(db_path: Path, runner: Runner) -> int:
    """One tick over the store's trips in transit; how many were ticked."""
    store = open_store(db_path, migrate=False)
    try:
        return trips.tick(store.conn, now_ms(), runner)
    finally:
        store.close()


async def run_ticks(db_path: Path, every_s: float = EVERY_S,
                    runner: Runner | None = None) -> None:
    """Tick every ``every_s`` seconds until cancelled; a failed tick is logged, the next
    one runs (a busy store delays a tracking-gap alert by one period, no more)."""
    runner = runner or Runner()
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(tick_once, db_path, runner)
        except (ControllerError, sqlite3.Error) as exc:
            log.error("trip tick failed (%s); retrying in %.0f s", exc, every_s)
