"""The one place where errors become HTTP answers, all in one shape (:class:`ErrorBody`).

A controller error, an HTTPException, FastAPI's request validation and the auth middleware
all answer ``{"detail": "...", "error": "<Kind>"}`` (validation adds ``errors``, one entry
per field). Each route declares in the OpenAPI the statuses it can answer with this shape
(:func:`responses`), so that a client generated from the schema knows every answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.errors import (
    Conflict,
    ControllerError,
    InvalidInput,
    NotAllowed,
    NotAuthenticated,
    NotFound,
    Unavailable,
)
from controller.ledger.errors import LedgerError

# most specific first: the first class an error is an instance of decides
STATUS_OF: tuple[tuple[type[ControllerError], int], ...] = (
    (NotAuthenticated, 401),
    (NotAllowed, 403),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (LedgerError, 409),  # e.g. refusing to sign over an altered store
    (Unavailable, 503),
    (ControllerError, 400),
)

# the ``error`` of answers that do not come from a ControllerError
KIND_OF_STATUS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                  405: "MethodNotAllowed", 409: "Conflict", 413: "TooLarge",
                  422: "InvalidInput", 503: "Unavailable"}

DESCRIPTIONS = {
    401: "No token, or an unknown, revoked or expired one",
    403: "The token's role may not do this",
    404: "No such resource",
    409: "The request contradicts what is stored",
    413: "The request body is larger than the API accepts",
    422: "A parameter or the body is malformed or out of range",
    503: "The store is not available",
}


class FieldError(BaseModel):
    """One invalid field of a request."""

    loc: list[str | int] = Field(description="where: body, query, path or header, then names")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    detail: str = Field(description="what went wrong and what to do next")
    error: str = Field(description="its kind, e.g. NotFound, InvalidInput, Unauthorized")
    errors: list[FieldError] | None = Field(None, description="for InvalidInput from "
                                            "validation: each invalid field")


def status_of(exc: ControllerError) -> int:
    """The HTTP status of a controller error."""
    return next(code for cls, code in STATUS_OF if isinstance(exc, cls))


def error_response(status: int, detail: str, error: str | None = None, *,
                   errors: list[FieldError] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """An answer in the one error shape."""
    body = ErrorBody(detail=detail, error=error or KIND_OF_STATUS.get(status, "Error"),
                     errors=errors)
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer", **(headers or {})}
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries for these error statuses, all :class:`ErrorBody`."""
    return {code: {"model": ErrorBody, "description": DESCRIPTIONS[code]} for code in codes}


async def _controller_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ControllerError)
    return error_response(status_of(exc), str(exc), type(exc).__name__)


async def _http_exception(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # FastAPI's "error parsing the body": the body is malformed
        return error_response(422, "the body is not JSON in UTF-8 (or not the form the route "
                              "takes): send a JSON object", "InvalidInput")
    return error_response(exc.status_code, str(exc.detail),
                          headers=dict(exc.headers) if exc.headers else None)


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    # never echo the input: it may be megabytes, or NaN, which JSON cannot carry (that
    # was a 500 where a 422 is the answer)
    return [FieldError(loc=[p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
                       msg=str(e.get("msg", "")), type=str(e.get("type", "")))
            for e in exc.errors()]


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = _field_errors(exc)
    summary = "; ".join(f"{'.'.join(map(str, f.loc))}: {f.msg}" for f in fields[:5])
    return error_response(422, summary or "invalid request", "InvalidInput", errors=fields)


def install(app: FastAPI) -> None:
    """Answer every error a route or FastAPI raises with its status, in the one shape."""
    app.add_exception_handler(ControllerError, _controller_error)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(RequestValidationError, _validation_error)
