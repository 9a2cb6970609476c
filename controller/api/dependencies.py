"""Shared API dependencies: the store per request, and role checks on routers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

import sqlite_utils
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controller import auth, store

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer pwt_...`")


def get_db(request: Request) -> Iterator[sqlite_utils.Database]:
    """A connection to the store for this request (WAL: reads never block ingest)."""
    db = store.connect(request.app.state.db_path)
    try:
        yield db
    finally:
        db.close()


Db = Annotated[sqlite_utils.Database, Depends(get_db)]


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
