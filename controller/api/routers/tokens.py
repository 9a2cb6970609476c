"""API tokens (admin): create, list and revoke. A token is shown once, at creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from controller import auth
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import TokenCreate, TokenCreated, TokenInfo

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"],
                   dependencies=[Depends(require(auth.ADMINS))],
                   responses=responses(401, 403, 422, 503))


@router.get("", response_model=list[TokenInfo],
            summary="Tokens by id, name, role, expiry and state (live or expired; revoked "
            "too with revoked=true); never the tokens themselves")
def list_tokens(db: Db, revoked: Annotated[bool, Query(
        description="include revoked tokens")] = False) -> list[TokenInfo]:
    return [TokenInfo(**t) for t in auth.list_tokens(db, include_revoked=revoked)]


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED,
             summary="Create a token, optionally expiring (expires_in_s); the answer holds "
             "it, once", responses=responses(413))
def create_token(body: TokenCreate, db: Db, who: Actor) -> TokenCreated:
    token = auth.create_token(db, name=body.name, role=body.role, actor=who,
                              expires_in_s=body.expires_in_s)
    info = next(t for t in auth.list_tokens(db) if t["token_id"] == auth.token_id(token))
    return TokenCreated(**info, token=token)


@router.delete("/{token_id}", response_model=TokenInfo,
               summary="Revoke a token by its id (or its name); it answers 401 at once. The "
               "last live admin token only with force=true", responses=responses(404, 409))
def revoke_token(token_id: Annotated[str, Path(min_length=1, max_length=auth.NAME_MAX)],
                 db: Db, who: Actor,
                 force: Annotated[bool, Query(description="revoke even the last live admin "
                                              "token")] = False) -> TokenInfo:
    return TokenInfo(**auth.revoke_token(db, token_id, actor=who, force=force))
