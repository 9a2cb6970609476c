"""Destination offices' trip feed: what each office was sent and acked, and a trip's
deliveries (controller/office_feed.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from controller import auth, office_feed
from controller.api.dependencies import Db, require
from controller.api.errors import responses
from controller.storage import now_ms

router = APIRouter(tags=["offices"], dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))


class OfficeStatus(BaseModel):
    office_id: str
    name: str
    destinations: list[str] = Field(description="destination zone ids whose trips it "
                                    "receives ('*': every one)")
    created_ms: int
    queued: int = Field(description="trip records queued for it, ever")
    sent: int = Field(description="records sent at least once")
    acked: int = Field(description="records it acknowledged")
    pending: int = Field(description="records not acknowledged yet (sent or still queued)")
    oldest_pending_age_ms: int | None = Field(description="age of its oldest unacknowledged "
                                              "record; past the limit: office_unreachable")
    last_ack_ms: int | None


class Delivery(BaseModel):
    office_id: str
    office_seq: int = Field(description="the record's number in that office's feed")
    trip_id: str
    version: int = Field(description="the trip record's version (one per trip change)")
    created_ms: int
    attempts: int = Field(description="times sent")
    last_sent_ms: int | None
    next_ms: int = Field(description="when it is sent again unless acknowledged")
    acked_ms: int | None
    state: str = Field(description="queued, sent (awaiting the ack) or acked")


@router.get("/api/v1/offices", response_model=list[OfficeStatus],
            summary="Destination offices: trip records sent, acknowledged and pending, and "
            "the age of the oldest pending one")
def list_offices(db: Db) -> list[OfficeStatus]:
    return [OfficeStatus(**o) for o in office_feed.office_status(db.conn, now_ms())]


@router.get("/api/v1/trips/{trip_id}/deliveries", response_model=list[Delivery],
            summary="Each record of a trip sent to destination offices, with its delivery "
            "state (empty: no office receives its destination, or no such trip)")
def trip_deliveries(trip_id: Annotated[str, Path(min_length=1, max_length=128)],
                    db: Db) -> list[Delivery]:
    return [Delivery(**d) for d in office_feed.trip_deliveries(db.conn, trip_id)]
