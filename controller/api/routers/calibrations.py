"""Instruments' calibration certificates, and a lot's mass balance and draft surveys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth, calibration, mass_balance
from controller.api.dependencies import Actor, Db, DeviceFilter, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN, Body, WholeNumber
from controller.holds import LOT_PATTERN
from controller.storage import now_ms

router = APIRouter(prefix="/api/v1", tags=["calibration"],
                   responses=responses(401, 403, 422, 503))
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the instrument's device id")]
LotPath = Annotated[str, Path(pattern=LOT_PATTERN, description="the lot id",
                              examples=["LOT-2026-0042"])]
#: a certificate makes a scale's readings release cargo: an admin records it
CALIBRATION_ROLES = auth.ADMINS
SURVEY_ROLES = frozenset({"operator", "admin"})
MS_MAX = 2**53


class CalibrationRequest(Body):
    certificate_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
                                examples=["LN-MET-2026-1187"])
    accuracy_class: str = Field(description="III (truck scale, OIML R76), 0.2 / 0.5 / 1 / 2 "
                                "(rail, OIML R106) or analyzer",
                                pattern=r"^(I|II|III|IIII|0\.2|0\.5|1|2|analyzer)$",
                                examples=["III"])
    e_kg: WholeNumber | None = Field(default=None, ge=1, le=100_000, examples=[20],
                             description="verification scale interval (required for R76 "
                             "classes)")
    issued_ms: WholeNumber = Field(ge=0, le=MS_MAX, examples=[1_764_000_000_000])
    expires_ms: WholeNumber = Field(ge=1, le=MS_MAX, examples=[1_795_536_000_000])
    issuer: str = Field(min_length=1, max_length=200, pattern=r"\S",
                        examples=["Liaoning Institute of Metrology"])


class Calibration(BaseModel):
    device_id: str
    certificate_id: str
    accuracy_class: str
    e_kg: int | None
    issued_ms: int
    expires_ms: int
    issuer: str
    actor: str
    recorded_ms: int


class DraftSurveyRequest(Body):
    kg: WholeNumber = Field(ge=1, le=mass_balance.DRAFT_KG_MAX, examples=[52_340_000])
    surveyor: str = Field(min_length=1, max_length=200, pattern=r"\S",
                          examples=["SGS Dalian"])


class Discrepancy(BaseModel):
    code: str = Field(description="unloaded_vs_declared or dispatched_exceeds_unloaded")
    difference_kg: int
    tolerance_kg: int
    text: str


class Balance(BaseModel):
    lot_id: str
    status: str
    declared_kg: int
    draft_survey_kg: int | None
    unloaded: dict[str, Any] = Field(description="kg, source (scales, draft_survey or "
                                     "declared), readings, tolerance_kg")
    dispatched: dict[str, Any] = Field(description="kg and tolerance_kg, by truck and rail")
    remaining_kg: int = Field(description="unloaded - dispatched")
    unloading_done: bool
    discrepancies: list[Discrepancy]
    out_of_calibration_readings: int
    notes: list[str]


@router.post("/devices/{device_id}/calibrations", response_model=Calibration,
             status_code=201, summary="Record an instrument's calibration certificate",
             dependencies=[Depends(require(CALIBRATION_ROLES))],
             responses=responses(404, 409, 413))
def add_calibration(device_id: DeviceId, body: CalibrationRequest, db: Db,
                    who: Actor) -> Calibration:
    row = calibration.add(db, device_id, certificate_id=body.certificate_id,
                          accuracy_class=body.accuracy_class, e_kg=body.e_kg,
                          issued_ms=body.issued_ms, expires_ms=body.expires_ms,
                          issuer=body.issuer, actor=who)
    return Calibration(**row)


@router.get("/calibrations", response_model=list[Calibration],
            summary="Calibration certificates by expiry, or the instruments due",
            dependencies=[Depends(require(auth.READERS))])
def list_calibrations(db: Db, device_id: DeviceFilter = None,
                      due_within_days: Annotated[float | None, Query(
                          ge=0, le=3660, description="only each instrument's last "
                          "certificate when it expires within this many days (expired ones "
                          "included)")] = None) -> list[Calibration]:
    rows = calibration.due(db.conn, within_days=due_within_days, now=now_ms(),
                           device_id=device_id)
    return [Calibration(**r) for r in rows]


@router.get("/lots/{lot}/balance", response_model=Balance,
            summary="A lot's mass balance: declared, unloaded, dispatched, remaining",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def get_balance(lot: LotPath, db: Db) -> Balance:
    return Balance(**mass_balance.balance(db.conn, lot))


@router.post("/lots/{lot}/draft-survey", response_model=Balance, status_code=201,
             summary="Enter a draft survey's figure for a lot (the balance after it)",
             dependencies=[Depends(require(SURVEY_ROLES))], responses=responses(404, 413))
def add_draft_survey(lot: LotPath, body: DraftSurveyRequest, db: Db, who: Actor) -> Balance:
    return Balance(**mass_balance.add_draft_survey(db, lot, kg=body.kg, surveyor=body.surveyor,
                                                   actor=who))
