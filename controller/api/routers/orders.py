"""Transfer orders: create (operators and admins), list, show, cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from controller import auth
from controller import orders as orders_mod
from controller.api.dependencies import Actor, Db, TextFilter, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN, MS_MAX, Body
from controller.errors import InvalidInput, NotFound
from controller.storage import orders as order_rows

router = APIRouter(prefix="/api/v1", tags=["orders"], responses=responses(401, 403, 422, 503))
WRITERS = frozenset({"operator", "admin"})
OrderPath = Annotated[str, Path(pattern=ID_PATTERN, description="the order id",
                                examples=["o-3f2a9c01b7d4"])]
STATUSES = ("open", "departed", "arrived", "cancelled")
TIME_HELP = ("UTC time: milliseconds since the Unix epoch, or ISO-8601 with a zone "
             "(2026-12-01T08:00:00Z)")
Time = Annotated[int | Annotated[str, Field(max_length=40)],
                 Field(description=TIME_HELP, examples=["2026-12-01T08:00:00Z"])]


class Order(BaseModel):
    order_id: str
    lot: str
    plate: str
    tracker_id: str = Field(description="the GPS tracker on the truck (a registered gps device)")
    destination: str = Field(description="a destination zone of the site")
    corridor: str = Field(description="the corridor of the site leading to the destination")
    window_start_ms: int
    window_end_ms: int
    expected_net_kg: int
    status: str = Field(description="open, departed, arrived or cancelled")
    created_ms: int
    created_by: str
    updated_ms: int
    cancel_reason: str | None = None


class OrderRequest(Body):
    lot: str = Field(min_length=1, max_length=64, examples=["LOT-2026-0042"],
                     description="letters, digits and . _ / - (as lot holds name lots)")
    plate: str = Field(min_length=1, max_length=32, examples=["辽B12345"])
    tracker_id: str = Field(pattern=ID_PATTERN, examples=["gps-7"])
    destination: str = Field(min_length=1, max_length=64, examples=["dest-feed-mill"])
    corridor: str = Field(min_length=1, max_length=64, examples=["c-feed-mill"])
    window_start: Time
    window_end: Time
    expected_net_kg: int = Field(ge=0, le=200_000, examples=[30000])


class CancelRequest(Body):
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S",
                        examples=["truck broke down at the gate"])


def to_ms(value: int | str, name: str) -> int:
    """A time given as ms since the epoch or ISO-8601 with a zone, as ms (InvalidInput)."""
    if isinstance(value, int):
        ms = value
    else:
        try:
            dt = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(f"{name}: {value[:40]!r} is not ISO-8601; {TIME_HELP}") from exc
        if dt.tzinfo is None:
            raise InvalidInput(f"{name}: give a zone (Z or +08:00); {TIME_HELP}")
        ms = int(dt.timestamp() * 1000)
    if not 0 <= ms <= MS_MAX:
        raise InvalidInput(f"{name} is out of range; {TIME_HELP}")
    return ms


def to_order(row: dict[str, Any]) -> Order:
    return Order(**row)


@router.post("/orders", response_model=Order, status_code=201,
             summary="Create a transfer order (checked against the site and the registry)",
             dependencies=[Depends(require(WRITERS))], responses=responses(413))
def create_order(body: OrderRequest, db: Db, who: Actor) -> Order:
    new = orders_mod.NewOrder(
        lot=body.lot, plate=body.plate, tracker_id=body.tracker_id,
        destination=body.destination, corridor=body.corridor,
        window_start_ms=to_ms(body.window_start, "window_start"),
        window_end_ms=to_ms(body.window_end, "window_end"),
        expected_net_kg=body.expected_net_kg)
    return to_order(orders_mod.create(db, new, actor=who))


@router.get("/orders", response_model=list[Order], summary="Transfer orders, newest first",
            dependencies=[Depends(require(auth.READERS))])
def list_orders(db: Db,
                status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSES) + ")$")]
                = None,
                plate: TextFilter = None, lot: TextFilter = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> list[Order]:
    return [to_order(r) for r in order_rows.list_orders(
        db.conn, status=status, plate=plate, lot=lot, limit=limit, offset=offset)]


@router.get("/orders/{order_id}", response_model=Order, summary="One transfer order",
            dependencies=[Depends(require(auth.READERS))], responses=responses(404))
def get_order(order_id: OrderPath, db: Db) -> Order:
    row = order_rows.get_order(db.conn, order_id)
    if row is None:
        raise NotFound(f"no transfer order {order_id!r}: list them with GET /api/v1/orders")
    return to_order(row)


@router.post("/orders/{order_id}/cancel", response_model=Order,
             summary="Cancel an open or departed order (a trip in transit ends too)",
             dependencies=[Depends(require(WRITERS))], responses=responses(404, 409, 413))
def cancel_order(order_id: OrderPath, body: CancelRequest, db: Db, who: Actor) -> Order:
    return to_order(orders_mod.cancel(db, order_id, reason=body.reason, actor=who))
