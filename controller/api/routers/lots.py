"""Lot holds: put a lot on hold (its trucks are denied at the out-gate), release it, list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth
from controller import holds as holds_mod
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import Body

router = APIRouter(tags=["lots"], responses=responses(401, 403, 422, 503))
LotPath = Annotated[str, Path(pattern=holds_mod.LOT_PATTERN, description="the lot id",
                              examples=["LOT-2026-0042"])]


class Hold(BaseModel):
    id: int
    lot: str
    reason: str
    actor: str = Field(description="who put the hold")
    held_ms: int
    active: bool
    released_ms: int | None = None
    released_by: str | None = None
    release_reason: str | None = None


class HoldRequest(Body):
    reason: str = Field(min_length=1, max_length=holds_mod.REASON_MAX,
                        pattern=r"\S", examples=["phytosanitary inspection pending"],
                        description="why (it goes to the ledger)")


def to_hold(r: dict[str, Any]) -> Hold:
    return Hold(active=r["released_ms"] is None, **r)


@router.post("/api/v1/lots/{lot}/hold", response_model=Hold, status_code=201,
             summary="Put a lot on hold: its trucks are denied at the out-gate until released",
             dependencies=[Depends(require(holds_mod.HOLD_ROLES))],
             responses=responses(409, 413))
def hold_lot(lot: LotPath, body: HoldRequest, db: Db, who: Actor) -> Hold:
    return to_hold(holds_mod.hold(db, lot, reason=body.reason, actor=who))


@router.post("/api/v1/lots/{lot}/release", response_model=Hold,
             summary="Release a lot's active hold (admin)",
             dependencies=[Depends(require(holds_mod.RELEASE_ROLES))],
             responses=responses(404, 413))
def release_lot(lot: LotPath, body: HoldRequest, db: Db, who: Actor) -> Hold:
    return to_hold(holds_mod.release(db, lot, reason=body.reason, actor=who))


@router.get("/api/v1/holds", response_model=list[Hold],
            summary="Lot holds, newest first: active ones (default), released ones, or all",
            dependencies=[Depends(require(auth.READERS))])
def list_holds(db: Db, active: Annotated[bool | None, Query(
                   description="true: holding now (default); false: released")] = True,
               all: Annotated[bool, Query(description="active and released")] = False,
               lot: Annotated[str | None, Query(pattern=holds_mod.LOT_PATTERN)] = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Hold]:
    rows = holds_mod.list_holds(db, active=None if all else active, lot=lot, limit=limit)
    return [to_hold(r) for r in rows]
