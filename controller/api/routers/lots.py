"""Lot holds: put a lot on hold (its trucks are denied at the out-gate), release it, list;
two release officers approve the release of a quarantine hold."""

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
KIND_PATTERN = "^(" + "|".join(holds_mod.KINDS) + ")$"


class Hold(BaseModel):
    id: int
    lot: str
    kind: str = Field(description=", ".join(holds_mod.KINDS))
    reason: str
    actor: str = Field(description="who put the hold")
    held_ms: int
    active: bool
    released_ms: int | None = None
    released_by: str | None = None
    release_reason: str | None = None
    approvals: list[str] = Field(default_factory=list,
                                 description="release officers who approved its release")
    needed: int = Field(0, description="approvals still needed before it is released")


class HoldRequest(Body):
    reason: str = Field(min_length=1, max_length=holds_mod.REASON_MAX,
                        pattern=r"\S", examples=["phytosanitary inspection pending"],
                        description="why (it goes to the ledger)")
    kind: str = Field("manual", pattern=KIND_PATTERN,
                      description="manual (default), quarantine (its release needs two "
                      "release officers), recall or blend_input")


class ReleaseRequest(Body):
    reason: str = Field(min_length=1, max_length=holds_mod.REASON_MAX,
                        pattern=r"\S", examples=["inspection passed, cert 7781"],
                        description="why (it goes to the ledger)")
    kind: str | None = Field(None, pattern=KIND_PATTERN,
                             description="which hold, when the lot has several")


class ApproveRequest(Body):
    reason: str = Field(min_length=1, max_length=holds_mod.REASON_MAX,
                        pattern=r"\S", examples=["lab certificate 2026-551 clean"],
                        description="why (it goes to the ledger)")


def to_hold(r: dict[str, Any]) -> Hold:
    return Hold(active=r["released_ms"] is None, **r)


@router.post("/api/v1/lots/{lot}/hold", response_model=Hold, status_code=201,
             summary="Put a lot on hold: its trucks are denied at the out-gate until released",
             dependencies=[Depends(require(holds_mod.HOLD_ROLES))],
             responses=responses(409, 413))
def hold_lot(lot: LotPath, body: HoldRequest, db: Db, who: Actor) -> Hold:
    return to_hold(holds_mod.hold(db, lot, reason=body.reason, actor=who, kind=body.kind))


@router.post("/api/v1/lots/{lot}/release", response_model=Hold,
             summary="Release a lot's active hold (admin; a quarantine hold: 409, two release "
             "officers approve it)",
             dependencies=[Depends(require(holds_mod.RELEASE_ROLES))],
             responses=responses(404, 409, 413))
def release_lot(lot: LotPath, body: ReleaseRequest, db: Db, who: Actor) -> Hold:
    return to_hold(holds_mod.release(db, lot, reason=body.reason, actor=who, kind=body.kind))


@router.post("/api/v1/holds/{hold_id}/approve", response_model=Hold,
             summary="Approve the release of a quarantine hold (release_officer): the second "
             "different officer's approval releases it",
             dependencies=[Depends(require(holds_mod.APPROVE_ROLES))],
             responses=responses(404, 409, 413))
def approve_release(hold_id: Annotated[int, Path(ge=1, le=2**62)], body: ApproveRequest,
                    db: Db, who: Actor) -> Hold:
    return to_hold(holds_mod.approve_release(db, hold_id, reason=body.reason, officer=who))


@router.get("/api/v1/holds", response_model=list[Hold],
            summary="Lot holds, newest first: active ones (default), released ones, or all",
            dependencies=[Depends(require(auth.READERS))])
def list_holds(db: Db, active: Annotated[bool | None, Query(
                   description="true: holding now (default); false: released")] = True,
               all: Annotated[bool, Query(description="active and released")] = False,
               lot: Annotated[str | None, Query(pattern=holds_mod.LOT_PATTERN)] = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Hold]:
    rows = holds_mod.list_holds(db, active=None if all else active, lot=lot, limit=limit)
    return [to_hold(holds_mod.with_approvals(db, r)) for r in rows]
