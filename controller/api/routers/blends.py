"""Ore blends (make one, show one) and a lot's recall list."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from controller import auth, blends, recall
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import Body
from controller.holds import LOT_PATTERN

router = APIRouter(prefix="/api/v1", tags=["blends"], responses=responses(401, 403, 422, 503))
LotPath = Annotated[str, Path(pattern=LOT_PATTERN, description="the lot id",
                              examples=["ORE-2026-0007"])]
LotId = Annotated[str, Field(pattern=LOT_PATTERN, examples=["ORE-2026-0007"])]


class InputRequest(Body):
    lot: LotId
    kg: int = Field(ge=1, le=blends.MAX_KG, examples=[30_000_000])


class BlendRequest(Body):
    blend_lot: LotId = Field(description="the new lot the blend makes (not declared yet)")
    inputs: list[InputRequest] = Field(min_length=2, max_length=blends.MAX_INPUTS)
    reason: str = Field(min_length=1, max_length=blends.REASON_MAX, pattern=r"\S",
                        examples=["contract grade 62 % Fe"],
                        description="why (it goes to the ledger)")


class BlendInput(BaseModel):
    lot: str
    kg: int
    fraction: float = Field(description="the input's share of the blend's kg, 0-1")


class Blend(BaseModel):
    blend_lot: str
    commodity: str | None
    origin: str = Field(description='always "blend"')
    origins: list[str] = Field(description="the inputs' origin countries")
    total_kg: int
    reason: str
    actor: str
    created_ms: int
    inputs: list[BlendInput]


class RecallTrip(BaseModel):
    trip_id: str
    plate: str | None
    lot: str = Field(description="the lot the truck carried (the recalled lot or a blend)")
    via: str = Field(description="the recalled lot, or the blend containing it")
    fraction: float = Field(description="the recalled lot's share of what the truck carried")
    destination: str | None
    departed_ms: int
    net_kg: int | None
    status: str
    arrived_ts: int | None = Field(description="device time of arrival; null: not arrived")


class RecallCar(BaseModel):
    train: str
    initial: str
    number: int
    lot: str = Field(description="the lot the car carried (the recalled lot or a blend)")
    via: str
    fraction: float
    destination: str | None
    train_status: str = Field(description="open, passed or released")
    time_ms: int | None = Field(description="when released, else when the reader saw it "
                                "pass; null: neither yet")
    weight_kg: int | None = Field(description="measured in motion, else the manifest's")
    weighed: bool


class Lineage(BaseModel):
    lot: str
    fraction: float
    depth: int


class RecallList(BaseModel):
    lot: str
    blends: list[Lineage] = Field(description="blends containing the lot, at any depth")
    trips: list[RecallTrip]
    cars: list[RecallCar]
    kg: dict[str, int] = Field(description="net kg out by trucks and by rail")
    hash: str = Field(description="sha256 of the list's canonical JSON (the recall "
                      "decision names it)")


def _blend(r: dict[str, Any]) -> Blend:
    return Blend(**{**r, "inputs": [BlendInput(**i) for i in r["inputs"]]})


@router.post("/blends", response_model=Blend, status_code=201,
             summary="Blend declared lots into a new lot (a blend decision)",
             dependencies=[Depends(require(blends.BLEND_ROLES))],
             responses=responses(409, 413))
def create_blend(body: BlendRequest, db: Db, who: Actor) -> Blend:
    made = blends.create(db, body.blend_lot, [blends.BlendInput(i.lot, i.kg)
                                              for i in body.inputs],
                         reason=body.reason, actor=who)
    return _blend(made)


@router.get("/blends/{lot}", response_model=Blend, summary="A blend and its inputs",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def get_blend(lot: LotPath, db: Db) -> Blend:
    return _blend(blends.get(db, lot))


@router.get("/lots/{lot}/recall", response_model=RecallList,
            summary="Every truck trip and rail car that carried a lot or a blend of it",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def get_recall(lot: LotPath, db: Db) -> RecallList:
    return RecallList.model_validate(recall.get_recall_list(db, lot))
