"""`portwatch witness serve`: an HTTP witness speaking c2sp.org/tlog-witness v1.1.0.

It runs at the destination customs office with its own state directory (the one
`portwatch witness init` made: its key, the pinned log key, the last cosigned size and
root) and nothing of the controller's store. One asyncio lock serialises requests, so
two requests from the same size can never both be cosigned onto different roots, and a
file lock on the state directory keeps a second witness process (or `witness cosign`)
off it. Every decision is logged with its status and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from controller.errors import Conflict
from controller.ledger.witness import Witness
from controller.ledger.witness_protocol import MAX_BODY_BYTES, Answer, add_checkpoint

log = logging.getLogger("portwatch.witness")
LOCK_FILE = "witness.lock"


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Hold the state directory's lock; Conflict when another process holds it."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise Conflict(f"another witness process holds {state_dir}: one process per "
                           "witness state, or two could cosign two branches") from exc
        yield
    finally:
        os.close(fd)


def create_app(state_dir: Path, *, clock: Callable[[], float] = time.time) -> Starlette:
    """The ASGI app of one witness (the caller holds its state lock)."""
    witness = Witness.open(state_dir)
    lock = asyncio.Lock()

    async def add(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _answer(Answer(413, f"the body is limited to {MAX_BODY_BYTES} bytes\n",
                                  reason="too large"), request)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _answer(Answer(413, f"the body is limited to {MAX_BODY_BYTES} bytes\n",
                                      reason="too large"), request)
        async with lock:
            try:
                answer = add_checkpoint(witness, body, int(clock()))
            except Exception:  # never crash the witness on one request: log it, answer 500
                log.exception("add-checkpoint failed")
                answer = Answer(500, "internal error: see the witness's log\n",
                                reason="exception")
        return _answer(answer, request)

    async def health(_: Request) -> Response:
        last = witness.last()
        return PlainTextResponse(f"ok {witness.verifier.vkey} size "
                                 f"{last.size if last else 0}\n")

    return Starlette(routes=[Route("/add-checkpoint", add, methods=["POST"]),
                             Route("/healthz", health, methods=["GET"])])


def _answer(answer: Answer, request: Request) -> Response:
    client = request.client.host if request.client else "?"
    level = logging.INFO if answer.status in (200, 409) else logging.WARNING
    log.log(level, "add-checkpoint from %s: %d (%s)", client, answer.status, answer.reason)
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)


def serve(state_dir: Path, host: str, port: int) -> None:
    """Serve until interrupted; Conflict if another process holds the state."""
    import uvicorn

    with state_lock(state_dir):
        app = create_app(state_dir)
        w = Witness.open(state_dir)
        log.info("witness %s for log %s on http://%s:%d/add-checkpoint", w.verifier.vkey,
                 w.log_key.vkey, host, port)
        uvicorn.run(app, host=host, port=port, log_level="warning")
