"""The one place where the controller's errors become HTTP statuses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from controller.errors import Conflict, ControllerError, InvalidInput, NotFound, Unavailable
from controller.ledger.errors import LedgerError

# most specific first: the first class an error is an instance of decides
STATUS_OF: tuple[tuple[type[ControllerError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (LedgerError, 409),  # e.g. refusing to sign over an altered store
    (Unavailable, 503),
    (ControllerError, 400),
)


def status_of(exc: ControllerError) -> int:
    """The HTTP status of a controller error."""
    return next(code for cls, code in STATUS_OF if isinstance(exc, cls))


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControllerError)
    return JSONResponse({"detail": str(exc), "error": type(exc).__name__},
                        status_code=status_of(exc))


def install(app: FastAPI) -> None:
    """Answer every ControllerError a route raises with its status and message."""
    app.add_exception_handler(ControllerError, _handle)
