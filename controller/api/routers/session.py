"""Who is calling (``/whoami``) and the dashboard's session cookie for its event stream.

The dashboard sends ``Authorization: Bearer`` on every data call. A browser's EventSource
cannot send that header, so ``POST /api/v1/session`` (itself behind the bearer check)
answers with an HttpOnly cookie holding the token, scoped to the event stream's path only:
controller/api/gate.py accepts it there and nowhere else (see its docstring).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from controller import auth
from controller.api import gate
from controller.api.dependencies import BearerCreds, Who, require
from controller.api.errors import responses

router = APIRouter(prefix="/api/v1", tags=["session"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))
SESSION_MAX_AGE_S = 12 * 3600  # a shift; the token's own expiry and revocation still apply


class WhoAmI(BaseModel):
    name: str = Field(description="the token's name (who holds it)")
    role: str = Field(description="operator, auditor, admin or release_officer")


@router.get("/whoami", response_model=WhoAmI, summary="The caller's token name and role")
def whoami(caller: Who) -> WhoAmI:
    name, role = caller
    return WhoAmI(name=name, role=role)


@router.post("/session", response_model=WhoAmI,
             summary="Set the HttpOnly cookie the dashboard's event stream authenticates with "
             "(only GET /api/v1/events accepts it)", responses=responses(413))
def start_session(response: Response, creds: BearerCreds, caller: Who) -> WhoAmI:
    name, role = caller
    if creds is not None:  # the Gate let the call in, so the header holds a live token
        response.set_cookie(gate.SESSION_COOKIE, creds.credentials, max_age=SESSION_MAX_AGE_S,
                            path=gate.EVENTS_PATH, httponly=True, samesite="strict")
    return WhoAmI(name=name, role=role)


@router.delete("/session", response_model=WhoAmI,
               summary="Clear the event stream's cookie (the dashboard's log out)")
def end_session(response: Response, caller: Who) -> WhoAmI:
    name, role = caller
    response.delete_cookie(gate.SESSION_COOKIE, path=gate.EVENTS_PATH, httponly=True,
                           samesite="strict")
    return WhoAmI(name=name, role=role)
