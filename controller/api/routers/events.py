"""Live changes as server-sent events, for the dashboard: ``GET /api/v1/events``.

Each second the stream reads a few aggregates of the store (controller/dashboard/changes.py)
and sends one event per topic that moved (``alert``, ``device``, ``trip``, ``position``,
``gate``) with its mark; the page fetches what it shows again. Bounded: one short read a
second per open stream, a comment every 15 s keeps proxies from closing it, and the stream
ends after ``max_s`` (the browser's EventSource reconnects by itself, through the Gate
again). The caller's token is checked again every 5 s, so a revoked or expired token stops
receiving within that time. A client that goes away ends the loop at its next await: the
response is cancelled, nothing is left running (``ACTIVE`` counts live streams; the tests
wait for it to fall back).

Authentication: the Gate middleware (controller/api/gate.py) has already checked the token
(bearer header, or the HttpOnly ``pw_session`` cookie on this path only) before this runs;
``require`` then checks the role. No data leaves without a live token.

Left out of the OpenAPI document: a stream never ends on its own terms for a fuzzer; the
README's API table lists it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from controller import auth
from controller.api import gate
from controller.api.dependencies import require
from controller.dashboard.changes import Marks, changed, read_marks, sse
from controller.errors import ControllerError
from controller.storage import open_store

router = APIRouter(prefix="/api/v1", tags=["events"])
POLL_S = 1.0
KEEPALIVE_S = 15.0
RECHECK_S = 5.0
ACTIVE = 0  # streams open now in this process


def _marks(db_path: Path) -> Marks:
    with open_store(db_path, migrate=False) as store:
        return read_marks(store.conn)


def _still_live(db_path: Path, token: str | None) -> bool:
    try:
        gate.caller(db_path, token)
    except ControllerError:
        return False
    return True


async def stream(request: Request, max_s: float) -> AsyncIterator[bytes]:
    """Events until ``max_s`` passes, the client leaves or the token stops being live."""
    global ACTIVE
    ACTIVE += 1
    try:
        db_path: Path = request.app.state.db_path
        token = gate.token_of(request.scope)
        yield b"retry: 2000\n\n"
        before: Marks | None = None
        start = last_sent = last_check = time.monotonic()
        while True:
            marks = await asyncio.to_thread(_marks, db_path)
            for topic in changed(before, marks):
                yield sse(topic, json.dumps({"mark": marks[topic]}))
                last_sent = time.monotonic()
            before = marks
            now = time.monotonic()
            if now - start >= max_s or await request.is_disconnected():
                return
            if now - last_check >= RECHECK_S:
                last_check = now
                if not await asyncio.to_thread(_still_live, db_path, token):
                    yield sse("logout", json.dumps({"reason": "token no longer live"}))
                    return
            if now - last_sent >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                last_sent = now
            await asyncio.sleep(POLL_S)
    finally:
        ACTIVE -= 1


@router.get("/events", include_in_schema=False,
            dependencies=[Depends(require(auth.READERS))])
async def events(request: Request,
                 max_s: Annotated[float, Query(ge=0, le=3600, description=(
                     "end the stream after this many seconds (0: the current marks once)"))]
                 = 600) -> StreamingResponse:
    """Server-sent events of what changed; see the module docstring."""
    return StreamingResponse(stream(request, max_s), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
