"""Shared API dependencies: the store per request, and role checks on routers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller.api import gate
from controller.api.models import ID_PATTERN
from controller.errors import InvalidInput, NotAllowed
from controller.ingest.stats import IngestStats
from controller.storage import Store, open_store

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer pwt_...`")


def get_db(request: Request) -> Iterator[Store]:
    """A connection to the store for this request (WAL: reads never block ingest).

    The schema was migrated once when the app was made, not on every request.
    """
    store = open_store(request.app.state.db_path, migrate=False)
    try:
        yield store
    finally:
        store.close()


Db = Annotated[Store, Depends(get_db)]
# query filters, bounded like what they filter
DeviceFilter = Annotated[str | None, Query(pattern=ID_PATTERN, description="only this device")]
TextFilter = Annotated[str | None, Query(min_length=1, max_length=100)]


def require(roles: frozenset[str]) -> Callable[..., str]:
    """A dependency that answers 401 without a live token and 403 for another role.

    The Gate middleware checked the token before the request was parsed and left its
    holder in ``request.state.caller``; without it (an app built without the Gate) the
    token is checked here.
    """

    def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        _name, role = _caller(request, creds)
        if role not in roles:
            raise NotAllowed(f"role {role!r} may not do this; needs one of {sorted(roles)}")
        _refuse_unknown_query(request)
        return role

    return check


def _query_names(dependant: Dependant) -> set[str]:
    names = {f.alias for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _refuse_unknown_query(request: Request) -> None:
    # a misspelt filter (?actve=false) was ignored and the caller got every row
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    unknown = sorted(set(request.query_params) - _query_names(route.dependant))
    if unknown:
        known = sorted(_query_names(route.dependant))
        raise InvalidInput(f"unknown query parameter(s) {', '.join(map(repr, unknown))}: "
                           f"this route takes {', '.join(known) or 'none'}")


def _caller(request: Request, creds: HTTPAuthorizationCredentials | None) -> tuple[str, str]:
    who: tuple[str, str] | None = getattr(request.state, "caller", None)
    if who is None:
        who = gate.caller(request.app.state.db_path, creds.credentials if creds else None)
    return who


def actor(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who is calling (``token:<name> (<role>)``), for records of changes; after ``require``."""
    name, role = _caller(request, creds)
    return f"token:{name} ({role})"


Actor = Annotated[str, Depends(actor)]
BearerCreds = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def who(request: Request, creds: BearerCreds) -> tuple[str, str]:
    """(name, role) of the caller, for routes that answer about the caller; after ``require``."""
    return _caller(request, creds)


Who = Annotated[tuple[str, str], Depends(who)]


def live_stats(app: FastAPI) -> dict[str, object]:
    """The running ingest's counters, or {} when the API runs without an ingest."""
    stats: IngestStats | None = app.state.ingest
    return dataclasses.asdict(stats) if stats is not None else {}
