"""Shared API dependencies: the store per request, and role checks on routers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller import auth
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


def require(roles: frozenset[str]) -> Callable[..., str]:
    """A dependency that answers 401 without a valid token and 403 for another role."""

    def check(
        db: Db,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> str:
        if creds is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token",
                                headers={"WWW-Authenticate": "Bearer"})
        role = auth.role_of(db, creds.credentials)
        if role is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown or revoked token",
                                headers={"WWW-Authenticate": "Bearer"})
        if role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"role {role!r} may not do this; needs one of {sorted(roles)}")
        return role

    return check


def actor(
    db: Db, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Who is calling (``token:<name> (<role>)``), for records of changes; after ``require``."""
    who = auth.identity(db, creds.credentials) if creds is not None else None
    return f"token:{who[0]} ({who[1]})" if who else "unknown"


Actor = Annotated[str, Depends(actor)]


def live_stats(app: FastAPI) -> dict[str, object]:
    """The running ingest's counters, or {} when the API runs without an ingest."""
    stats: IngestStats | None = app.state.ingest
    return dataclasses.asdict(stats) if stats is not None else {}
