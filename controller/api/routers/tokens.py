"""API tokens (admin): create, list and revoke. A token is shown once, at creation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from controller import auth
from controller.api.dependencies import Actor, Db, require
from controller.api.models import TokenCreate, TokenCreated, TokenInfo

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"],
                   dependencies=[Depends(require(auth.ADMINS))])


@router.get("", response_model=list[TokenInfo], summary="Tokens by id, name and role")
def list_tokens(db: Db, revoked: Annotated[bool, Query(
        description="include revoked tokens")] = False) -> list[TokenInfo]:
    return [TokenInfo(**t) for t in auth.list_tokens(db, include_revoked=revoked)]


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED,
             summary="Create a token; the answer holds it, once")
def create_token(body: TokenCreate, db: Db, who: Actor) -> TokenCreated:
    token = auth.create_token(db, name=body.name, role=body.role, actor=who)
    info = next(t for t in auth.list_tokens(db) if t["token_id"] == auth.token_id(token))
    return TokenCreated(**info, token=token)


@router.delete("/{token_id}", response_model=TokenInfo,
               summary="Revoke a token by its id (or its name); it stops working at once")
def revoke_token(token_id: str, db: Db, who: Actor) -> TokenInfo:
    return TokenInfo(**auth.revoke_token(db, token_id, actor=who))
