"""Lots from vessel to release: declare, list, show (history, holds, orders), change status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth
from controller import holds as holds_mod
from controller import lots as lots_mod
from controller.api.dependencies import Actor, Db, TextFilter, require
from controller.api.errors import responses
from controller.api.models import Body
from controller.api.routers.lots import Hold, to_hold
from controller.api.routers.orders import Order, to_order

router = APIRouter(prefix="/api/v1", tags=["lots"], responses=responses(401, 403, 422, 503))
LotPath = Annotated[str, Path(pattern=holds_mod.LOT_PATTERN, description="the lot id",
                              examples=["LOT-2026-0042"])]
STATUS_PATTERN = "^(" + "|".join(lots_mod.STATUSES) + ")$"
KIND_PATTERN = "^(" + "|".join(lots_mod.KINDS) + ")$"
# printable and not only spaces, as controller/lots.py checks
Text = Annotated[str, Field(min_length=1, max_length=lots_mod.TEXT_MAX,
                            pattern=r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$")]


class Lot(BaseModel):
    lot_id: str
    declaration_no: str
    commodity: str
    hs_code: str
    origin_country: str = Field(description="ISO 3166-1 alpha-2")
    vessel: str
    declared_kg: int
    kind: str = Field(description="grain, ore or other")
    status: str = Field(description=", ".join(lots_mod.STATUSES))
    created_ms: int
    updated_ms: int
    released_before_test: bool
    held_from: str | None = Field(None, description="while held: the status it returns to")
    created_by: str | None = None


class LotEvent(BaseModel):
    idx: int = Field(description="the ledger index of the lot decision")
    status: str
    reason: str | None = None
    actor: str
    time_ms: int


class LotDetail(Lot):
    next: list[str] = Field(description="the statuses it may be moved to now")
    history: list[LotEvent]
    holds: list[Hold]
    orders: list[Order]


class DeclareRequest(Body):
    lot_id: str = Field(pattern=holds_mod.LOT_PATTERN, examples=["LOT-2026-0042"])
    declaration_no: Text = Field(examples=["CN-DL-2026-118733"])
    commodity: Text = Field(examples=["wheat"])
    hs_code: str = Field(pattern=lots_mod.HS_PATTERN, examples=["100199"],
                         description="6-10 digits")
    origin_country: str = Field(pattern="^[A-Z]{2}$", examples=["UA"],
                                description="ISO 3166-1 alpha-2")
    vessel: Text = Field(examples=["MV Star Pisces"])
    declared_kg: int = Field(ge=1, le=lots_mod.DECLARED_KG_MAX, examples=[52_000_000])
    kind: str = Field(pattern=KIND_PATTERN, examples=["grain"])


class StatusRequest(Body):
    status: str = Field(pattern=STATUS_PATTERN, examples=["unloading"])
    reason: str = Field(min_length=1, max_length=lots_mod.REASON_MAX, pattern=r"\S",
                        examples=["berth-1 discharge started"])
    released_before_test: bool = Field(
        default=False, description="release an ore lot before its lab result (status "
        "released only): a failing result later recalls it")


def to_lot(row: dict[str, Any]) -> Lot:
    return Lot(**{**row, "released_before_test": bool(row["released_before_test"])})


@router.post("/lots", response_model=Lot, status_code=201,
             summary="Declare a lot (its declaration, commodity, HS code, origin, vessel, kg)",
             dependencies=[Depends(require(lots_mod.LOT_ROLES))], responses=responses(409, 413))
def declare_lot(body: DeclareRequest, db: Db, who: Actor) -> Lot:
    return to_lot(lots_mod.declare(db, body.model_dump(), actor=who))


@router.get("/lots", response_model=list[Lot], summary="Lots, newest first",
            dependencies=[Depends(require(auth.READERS))])
def list_lots(db: Db, status: Annotated[str | None, Query(pattern=STATUS_PATTERN)] = None,
              vessel: TextFilter = None,
              kind: Annotated[str | None, Query(pattern=KIND_PATTERN)] = None,
              limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Lot]:
    return [to_lot(r) for r in lots_mod.list_lots(db, status=status, vessel=vessel, kind=kind,
                                                  limit=limit)]


@router.get("/lots/{lot}", response_model=LotDetail,
            summary="One lot with its status history, holds and transfer orders",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def show_lot(lot: LotPath, db: Db) -> LotDetail:
    d = lots_mod.show(db, lot)
    return LotDetail(**{**to_lot(d).model_dump(), "next": d["next"],
                        "history": [LotEvent(**e) for e in d["history"]],
                        "holds": [to_hold(holds_mod.with_approvals(db, h)) for h in d["holds"]],
                        "orders": [to_order(o) for o in d["orders"]]})


@router.post("/lots/{lot}/status", response_model=Lot,
             summary="Move a lot on (409 names the statuses possible from where it is)",
             dependencies=[Depends(require(lots_mod.LOT_ROLES))],
             responses=responses(404, 409, 413))
def change_status(lot: LotPath, body: StatusRequest, db: Db, who: Actor) -> Lot:
    return to_lot(lots_mod.change_status(db, lot, body.status, reason=body.reason, actor=who,
                                         released_before_test=body.released_before_test))
