"""Train manifests at the rail yard: declare one, list, show with its passage, release
(409 naming the held lots while a lot on the train is on hold)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth
from controller import trains as trains_mod
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import Body
from controller.holds import LOT_PATTERN

router = APIRouter(prefix="/api/v1", tags=["trains"], responses=responses(401, 403, 422, 503))
WRITERS = frozenset({"operator", "admin"})
TrainPath = Annotated[str, Path(pattern=trains_mod.TRAIN_ID_PATTERN, description="train id",
                                examples=["T-2026-12-01-1"])]


class ManifestCar(Body):
    initial: str = Field(pattern=trains_mod.INITIAL_PATTERN, examples=["DLCX"],
                         description="owner's initial as on the car's AEI tag")
    number: int = Field(ge=0, le=999_999, examples=[100001])
    lot: str | None = Field(None, pattern=LOT_PATTERN, examples=["LOT-2026-0042"])
    destination: str | None = Field(None, min_length=1, max_length=64,
                                    examples=["dest-feed-mill"])
    declared_kg: int | None = Field(None, ge=1, le=200_000,
                                    description="weight loaded into the car, for the "
                                    "in-motion scale's check (OIML R106)")


class ManifestRequest(Body):
    train_id: str = Field(pattern=trains_mod.TRAIN_ID_PATTERN, examples=["T-2026-12-01-1"])
    reader: str = Field(min_length=1, max_length=64, examples=["rail-1"],
                        description="the rail reader's device id that will see the train")
    direction: str = Field("out", pattern="^(in|out)$")
    cars: list[ManifestCar] = Field(min_length=1, max_length=trains_mod.MAX_CARS)
    note: str | None = Field(None, max_length=200)


class ReleaseRequest(Body):
    reason: str = Field("dispatched", min_length=1, max_length=200, pattern=r"\S")


class Train(BaseModel):
    train_id: str
    reader: str
    direction: str
    status: str = Field(description=", ".join(trains_mod.STATUSES))
    note: str | None = None
    actor: str | None = None
    created_ms: int
    updated_ms: int | None = None
    passage_device: str | None = None
    passage_seq: int | None = None
    released_ms: int | None = None
    released_by: str | None = None
    cars: Any = Field(None, description="the manifest's cars (a number in lists)")
    held_lots: list[str] = Field(default_factory=list)
    passage: dict[str, Any] | None = None


@router.post("/trains", response_model=Train, status_code=201,
             summary="Declare a train's manifest: its cars in order with lot and destination",
             dependencies=[Depends(require(WRITERS))], responses=responses(409, 413))
def declare(body: ManifestRequest, db: Db, who: Actor) -> Any:
    return trains_mod.declare(db, body.model_dump(), actor=who)


@router.get("/trains", response_model=list[Train], summary="Train manifests, newest first",
            dependencies=[Depends(require(auth.READERS))])
def list_trains(db: Db, status: Annotated[str | None, Query(
                    pattern="^(" + "|".join(trains_mod.STATUSES) + ")$")] = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Any:
    return trains_mod.list_trains(db, status=status, limit=limit)


@router.get("/trains/{train_id}", response_model=Train,
            summary="One train: manifest, held lots, and the passage matched to it",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def show(train_id: TrainPath, db: Db) -> Any:
    return trains_mod.show(db, train_id)


@router.post("/trains/{train_id}/release", response_model=Train,
             summary="Dispatch a train (409 naming the lots on hold while any is)",
             dependencies=[Depends(require(WRITERS))], responses=responses(404, 409, 413))
def release(train_id: TrainPath, body: ReleaseRequest, db: Db, who: Actor) -> Any:
    return trains_mod.release(db, train_id, actor=who, reason=body.reason)
