"""Destination offices' trip feed: what each office was sent and acked, and a trip's
deliveries (controller/office_feed.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, Field

from controller import auth, office_feed
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN, Body
from controller.ledger import checkpoint
from controller.office_record import TRIP, TRIPACK, office_topic
from controller.storage import now_ms
from controller.storage import trip_records as reads

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


Admin = [Depends(require(auth.ADMINS))]
OfficeId = Annotated[str, Path(pattern=ID_PATTERN)]


class OfficeCreate(Body):
    office_id: str = Field(pattern=ID_PATTERN, examples=["cn-inland"],
                           description="also its broker login; not a device's id")
    name: str = Field("", max_length=200)
    destinations: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=64, examples=[["dest-grain-depot"]],
        description="destination zone ids whose trips it receives ('*': every one)")


class OfficeProvisioned(BaseModel):
    office_id: str
    password: str = Field(description="its broker password, shown once (only its hash is "
                          "kept): regenerate the broker files (`portwatch broker config`)")
    log_key: str = Field(description="the vkey that signs its trip records: pin it")
    trip_topic: str
    ack_topic: str


class OfficeRemoval(Body):
    reason: str = Field(min_length=1, max_length=200, examples=["office closed"])


@router.post("/api/v1/offices", response_model=OfficeProvisioned,
             status_code=status.HTTP_201_CREATED, dependencies=Admin,
             summary="Provision a destination office (admin); the answer holds its broker "
             "password, once", responses=responses(403, 409, 413))
def add_office(body: OfficeCreate, db: Db, request: Request, who: Actor) -> OfficeProvisioned:
    site: str = request.app.state.site
    password = office_feed.add_office(db, office_id=body.office_id,
                                      name=body.name or body.office_id,
                                      destinations=body.destinations, actor=who,
                                      time_ms=now_ms())
    origin = reads.origin(db.conn) or checkpoint.origin_for(site)
    vkey = checkpoint.log_signer(request.app.state.db_path, origin).verifier.vkey
    return OfficeProvisioned(office_id=body.office_id, password=password, log_key=vkey,
                             trip_topic=office_topic(site, body.office_id, TRIP),
                             ack_topic=office_topic(site, body.office_id, TRIPACK))


@router.post("/api/v1/offices/{office_id}/remove", response_model=OfficeRemoval,
             dependencies=Admin, summary="Stop sending trips to an office (admin); its "
             "records stay, its login goes with the next broker files",
             responses=responses(403, 404, 413))
def remove_office(office_id: OfficeId, body: OfficeRemoval, db: Db,
                  who: Actor) -> OfficeRemoval:
    office_feed.remove_office(db, office_id, actor=who, reason=body.reason, time_ms=now_ms())
    return body


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
