"""Where the trucks on a trip are now: one read for the dashboard's live map, instead of
every trip's whole track."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from controller import auth
from controller.api.dependencies import Db, require
from controller.api.errors import responses
from controller.storage import positions
from controller.storage import trips as trip_rows

router = APIRouter(prefix="/api/v1", tags=["trips"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))


class LivePosition(BaseModel):
    trip_id: str
    tracker_id: str
    plate: str | None
    lot: str | None
    destination: str | None
    corridor: str | None
    departed_ms: int
    ts_ms: int | None = Field(description="device time of the latest fix (null: none yet)")
    lat_e6: int | None
    lon_e6: int | None
    speed_dkmh: int | None
    received_ms: int | None


@router.get("/positions/latest", response_model=list[LivePosition],
            summary="Each trip in transit with its tracker's latest fix, latest departure first")
def latest_positions(db: Db, limit: Annotated[int, Query(ge=1, le=1000)] = 200
                     ) -> list[LivePosition]:
    out = []
    for t in trip_rows.list_trips(db.conn, status="in_transit", tracker_id=None, plate=None,
                                  limit=limit, offset=0):
        fix = positions.latest_fix(db.conn, t["tracker_id"]) or {}
        out.append(LivePosition(
            trip_id=t["trip_id"], tracker_id=t["tracker_id"], plate=t["plate"], lot=t["lot"],
            destination=t["destination"], corridor=t["corridor"], departed_ms=t["departed_ms"],
            ts_ms=fix.get("ts_ms"), lat_e6=fix.get("lat_e6"), lon_e6=fix.get("lon_e6"),
            speed_dkmh=fix.get("speed_dkmh"), received_ms=fix.get("received_ms")))
    return out
