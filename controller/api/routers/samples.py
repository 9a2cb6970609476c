"""Lab samples: each analyzer result with the lot it was tied to (controller/samples.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from controller import auth, samples
from controller import holds as holds_mod
from controller import lots as lots_mod
from controller.api.dependencies import Db, DeviceFilter, require
from controller.api.errors import responses
from controller.api.routers.lot_records import LotPath
from controller.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["samples"], responses=responses(401, 403, 422, 503))
LotFilter = Annotated[str | None, Query(pattern=holds_mod.LOT_PATTERN,
                                        description="only samples of this lot")]
Limit = Annotated[int, Query(ge=1, le=10_000)]


class Finding(BaseModel):
    species: str = Field(description="latin name, e.g. Ambrosia artemisiifolia")
    count: int = Field(description="seeds (or units) counted in the sample")
    sample_mass_g: int


class Sample(BaseModel):
    device_id: str
    seq: int
    sample_id: str
    sampled_ts: int = Field(description="sampling time, device clock, epoch ms")
    moisture_pm: int = Field(description="per mille of the sample's mass")
    basis: str = Field(description="wet or dry")
    protein_pm: int
    impurity_pm: int
    test_weight_g_per_l: int
    calibration_id: str
    outlier: bool
    findings: list[Finding]
    lot_id: str | None = Field(description="the lot unloading at the sampling time; null: "
                                           "none (alert sample_without_lot)")
    calibration_valid: bool | None = Field(
        description="whether a calibration certificate of the analyzer covered the "
                    "sampling time (null: the analyzer has no certificate on file, not "
                    "judged)")
    device_ts: int
    received_ms: int


def to_sample(row: dict[str, Any]) -> Sample:
    return Sample(**{**row, "findings": [Finding(species=f[0], count=f[1], sample_mass_g=f[2])
                                         for f in row["findings"]]})


@router.get("/samples", response_model=list[Sample],
            summary="Lab samples, newest first by sampling time (a re-sent result once)",
            dependencies=[Depends(require(auth.READERS))])
def list_samples(db: Db, lot: LotFilter = None, device_id: DeviceFilter = None,
                 limit: Limit = 100) -> list[Sample]:
    return [to_sample(r) for r in samples.list_samples(db.conn, lot=lot, device_id=device_id,
                                                       limit=limit)]


@router.get("/lots/{lot}/samples", response_model=list[Sample],
            summary="One lot's lab samples, newest first",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def lot_samples(lot: LotPath, db: Db, limit: Limit = 100) -> list[Sample]:
    if lots_mod.get_lot(db.conn, lot) is None:
        raise NotFound(f"lot {lot!r} is not declared: list lots with GET /api/v1/lots")
    return [to_sample(r) for r in samples.list_samples(db.conn, lot=lot, limit=limit)]
