"""What every ``/api/`` request passes before FastAPI looks at it: a live token, then a
bounded body, then query parameters given once each.

FastAPI validates the body and the query before it runs a route's dependencies, so with
the token checked in a dependency alone a caller holding a bogus token learned the
schema from a 422 (and a body of any size was read). Here the token is checked first:
a bad, unknown, revoked or expired token is 401 whatever the body or the query.

One exception to "the token is in the Authorization header": a browser's EventSource cannot
send headers, so ``GET /api/v1/events`` (the dashboard's live updates, and only that path
and method) also takes the token from the HttpOnly cookie ``pw_session`` that
``POST /api/v1/session`` sets after its own bearer check. The guarantees stay: the cookie's
token goes through the same ``caller`` check (unknown, revoked, expired: 401), no other
route reads the cookie (so a cross-site form cannot act with it: every change still needs
the header, which a browser never adds on its own), the cookie is HttpOnly (page scripts
cannot read it), SameSite=Strict and scoped to that one path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from controller import auth
from controller.api.errors import error_response, status_of
from controller.errors import ControllerError, NotAuthenticated
from controller.storage import open_store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The largest request body the API reads. Its biggest legitimate body is a device's
# provisioning (driver settings, a description of 500 characters): a few KB.
MAX_BODY = 64 * 1024
PROTECTED_PREFIX = "/api/"
# outside /api/ where Prometheus looks for it, guarded the same way unless the controller
# serves it openly (`portwatch controller --metrics-public`)
METRICS_PATH = "/metrics"
EVENTS_PATH = "/api/v1/events"  # the one route that also takes the session cookie
SESSION_COOKIE = "pw_session"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    if scope.get("method") == "GET" and scope.get("path") == EVENTS_PATH:
        return session_token(scope)
    return None


def token_of(scope: Scope) -> str | None:
    """The token a request carries: its bearer header, or the session cookie on the event
    stream."""
    return _bearer(scope)


def session_token(scope: Scope) -> str | None:
    """The token in the ``pw_session`` cookie, or None."""
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            text: str = bytes(value).decode("latin-1")
            for part in text.split(";"):
                key, _, token = part.strip().partition("=")
                if key == SESSION_COOKIE and token:
                    return token
    return None


def caller(db_path: Path, token: str | None) -> tuple[str, str]:
    """(name, role) of the token's holder; NotAuthenticated (401) or StoreError (503)."""
    if token is None:
        raise NotAuthenticated("missing bearer token: send `Authorization: Bearer <token>` "
                               "(an admin makes one with `portwatch token create`)")
    with open_store(db_path, migrate=False) as store:
        return auth.authenticate(store, token)


class Gate:
    """ASGI middleware: token, body size and repeated query parameters, in that order."""

    def __init__(self, app: ASGIApp, db_path: Callable[[], Path],
                 metrics_public: Callable[[], bool] = lambda: False) -> None:
        self.app = app
        self.db_path = db_path
        self.metrics_public = metrics_public

    def guarded(self, path: str) -> bool:
        """Whether a request to ``path`` needs a live token."""
        return path.startswith(PROTECTED_PREFIX) or (path == METRICS_PATH
                                                     and not self.metrics_public())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.guarded(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return
        try:
            who = caller(self.db_path(), _bearer(scope))
        except ControllerError as exc:
            await error_response(status_of(exc), str(exc), type(exc).__name__)(
                scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = who
        repeated = _repeated_query(scope)
        if repeated:
            # FastAPI keeps the last of `?limit=1&limit=x`: a mistyped value slips past
            await error_response(422, f"query parameter {repeated!r} given more than once: "
                                 "give it once")(scope, receive, send)
            return
        body = await _read_body(scope, receive)
        if body is None:
            await error_response(413, f"request body larger than {MAX_BODY} bytes")(
                scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _repeated_query(scope: Scope) -> str | None:
    seen: set[str] = set()
    for name, _ in parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"),
                             keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, or None when it is (or says it is) larger than MAX_BODY."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                if int(value) > MAX_BODY:
                    return None
            except ValueError:
                return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the real channel (it carries the disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
