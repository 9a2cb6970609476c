"""Trips: list, one trip with its order, departure weighing, events and alerts, its track."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth
from controller.api.dependencies import Db, TextFilter, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN
from controller.api.routers.orders import Order, to_order
from controller.errors import NotFound
from controller.storage import orders as order_rows
from controller.storage import positions
from controller.storage import trips as trip_rows

router = APIRouter(prefix="/api/v1", tags=["trips"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 403, 422, 503))
TripPath = Annotated[str, Path(pattern=ID_PATTERN, description="the trip id (its order's id)",
                               examples=["o-3f2a9c01b7d4"])]


class Trip(BaseModel):
    trip_id: str = Field(description="the trip's order id (one trip per order)")
    tracker_id: str
    plate: str | None
    lot: str | None
    destination: str | None
    corridor: str | None
    gate_device: str | None = Field(description="the out-gate weighbridge it left through")
    weighing_seq: int | None = Field(description="the departure weighing's seq there")
    net_kg: int | None
    departed_ms: int
    status: str = Field(description="in_transit, arrived or cancelled")
    arrived_ts: int | None = Field(description="device time of the first fix in the destination")
    closed_ms: int | None
    end_reason: str | None


class TripEvent(BaseModel):
    idx: int = Field(description="ledger index of the trip decision")
    event: str
    time_ms: int
    actor: str | None
    detail: dict[str, Any]


class TripAlert(BaseModel):
    id: int
    rule: str
    code: str
    severity: str
    subject: str | None
    raised_ts: int
    cleared_ts: int | None
    detail: dict[str, Any]


class TripDetail(Trip):
    order: Order | None
    departure_weighing: dict[str, Any] | None
    events: list[TripEvent]
    alerts: list[TripAlert]


class Fix(BaseModel):
    ts_ms: int
    lat_e6: int
    lon_e6: int
    speed_dkmh: int | None
    course_deg: int | None
    sats: int | None
    hdop_x10: int | None
    seq: int
    received_ms: int | None


def _trip(db: Db, trip_id: str) -> dict[str, Any]:
    row = trip_rows.get_trip(db.conn, trip_id)
    if row is None:
        raise NotFound(f"no trip {trip_id!r}: list them with GET /api/v1/trips")
    return row


@router.get("/trips", response_model=list[Trip], summary="Trips, latest departure first")
def list_trips(db: Db,
               status: Annotated[str | None, Query(pattern="^(in_transit|arrived|cancelled)$")]
               = None,
               tracker_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
               plate: TextFilter = None,
               limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
               offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[Trip]:
    return [Trip(**r) for r in trip_rows.list_trips(
        db.conn, status=status, tracker_id=tracker_id, plate=plate, limit=limit,
        offset=offset)]


@router.get("/trips/{trip_id}", response_model=TripDetail, responses=responses(404),
            summary="One trip: its order, departure weighing, events and alerts")
def get_trip(trip_id: TripPath, db: Db) -> TripDetail:
    row = _trip(db, trip_id)
    order = order_rows.get_order(db.conn, trip_id)
    weighing = None
    if row["gate_device"] is not None and row["weighing_seq"] is not None:
        weighing = trip_rows.weighing(db.conn, row["gate_device"], row["weighing_seq"])
    events = [TripEvent(idx=e["idx"], event=e["event"], time_ms=e["time_ms"], actor=e["actor"],
                        detail=json.loads(e["detail_json"] or "{}"))
              for e in trip_rows.events(db.conn, trip_id)]
    alerts = [TripAlert(id=a["id"], rule=a["rule"], code=a["code"], severity=a["severity"],
                        subject=a["subject"], raised_ts=a["raised_ts"],
                        cleared_ts=a["cleared_ts"], detail=json.loads(a["detail_json"] or "{}"))
              for a in trip_rows.trip_alerts(db.conn, trip_id)]
    return TripDetail(**row, order=None if order is None else to_order(order),
                      departure_weighing=weighing, events=events, alerts=alerts)


@router.get("/trips/{trip_id}/track", response_model=list[Fix], responses=responses(404),
            summary="The trip's fixes from departure to arrival (now, while in transit), "
            "by device time")
def get_track(trip_id: TripPath, db: Db,
              limit: Annotated[int, Query(ge=1, le=positions.TRACK_LIMIT)]
              = positions.TRACK_LIMIT) -> list[Fix]:
    row = _trip(db, trip_id)
    until = row["arrived_ts"] if row["status"] == "arrived" else (
        row["closed_ms"] if row["status"] == "cancelled" else None)
    return [Fix(**f) for f in positions.track(db.conn, row["tracker_id"], row["departed_ms"],
                                              until, limit)]
