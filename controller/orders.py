"""Transfer orders: created by an operator, checked against the site, cancelled; every
change an ``order`` decision in the ledger with the row it explains.

An order names the lot, the truck (plate), the GPS tracker on it, the destination zone, the
corridor to it and the window in which the truck may leave, with the expected net weight.
Status: open -> departed (controller/trips.depart) -> arrived | cancelled.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.holds import LOT_PATTERN
from controller.projections import orders as fold
from controller.registry import get as get_device
from controller.site import Site, current_site
from controller.storage import Store, ledger_log, now_ms
from controller.storage import orders as order_rows
from controller.storage import trips as trip_rows
from controller.trips import Supervise, cancel_trip

MAX_TEXT = 64


@dataclass(frozen=True, slots=True)
class NewOrder:
    """What an operator gives for a transfer order (times in ms since the epoch, UTC)."""

    lot: str
    plate: str
    tracker_id: str
    destination: str
    corridor: str
    window_start_ms: int
    window_end_ms: int
    expected_net_kg: int


def check(store: Store, new: NewOrder, site: Site) -> None:
    """InvalidInput naming the first field that does not fit the site or the registry."""
    if not re.fullmatch(LOT_PATTERN, new.lot):
        # the lot must be one a hold can name (POST /api/v1/lots/{lot}/hold)
        raise InvalidInput(f"lot {new.lot[:70]!r} must be 1-64 letters, digits and . _ / - "
                           "(starting with a letter or digit), as lot holds name lots")
    if not new.plate.strip() or len(new.plate) > MAX_TEXT or not new.plate.isprintable():
        raise InvalidInput(f"plate must be 1-{MAX_TEXT} printable characters")
    try:
        tracker = get_device(store, new.tracker_id)
    except NotFound as exc:
        raise InvalidInput(f"tracker_id: {exc}") from exc
    if tracker["kind"] != "gps" or tracker.get("decommissioned_ms") is not None:
        raise InvalidInput(f"tracker_id {new.tracker_id!r} is not a GPS tracker in service "
                           "(register one with `portwatch device add ID --kind gps`)")
    dests = [z.id for z in site.zones_of_kind("destination")]
    if new.destination not in dests:
        raise InvalidInput(f"destination {new.destination!r} is not a destination zone of "
                           f"site {site.id}: use one of {', '.join(dests) or '(none)'}")
    fitting = [c.id for c in site.corridors.values() if c.to_zone == new.destination]
    if new.corridor not in fitting:
        raise InvalidInput(f"corridor {new.corridor!r} does not lead to {new.destination} on "
                           f"site {site.id}: use one of {', '.join(fitting) or '(none)'}")
    if new.window_end_ms <= new.window_start_ms:
        raise InvalidInput("window_end must be after window_start")
    if not 0 <= new.expected_net_kg <= 200_000:
        raise InvalidInput("expected_net_kg must be 0-200000 kg")


def create(store: Store, new: NewOrder, *, actor: str, site: Site | None = None,
           time_ms: int | None = None) -> dict[str, Any]:
    """Check and create an order (an ``order`` decision); return its row."""
    site = site or current_site()
    check(store, new, site)
    time_ms = time_ms if time_ms is not None else now_ms()
    order_id = "o-" + secrets.token_hex(6)
    body = {"action": "create", "order_id": order_id,
            "order": {"order_id": order_id, **{f: getattr(new, f) for f in fold.ORDER_FIELDS
                                                if f != "order_id"}}}
    with store.transaction() as conn:
        row = _apply(conn, body, actor, time_ms)
    return row


def _apply(conn: Any, body: Mapping[str, Any], actor: str, time_ms: int) -> dict[str, Any]:
    ledger_log.append_decision(conn, "order", actor, dict(body), time_ms)
    oid = str(body["order_id"])
    row = fold.order_row(order_rows.get_order(conn, oid), body, actor, time_ms)
    assert row is not None
    order_rows.put_order(conn, row)
    return row


def cancel(store: Store, order_id: str, *, reason: str, actor: str,
           time_ms: int | None = None, supervise: Supervise | None = None) -> dict[str, Any]:
    """Cancel an open or departed order (its trip in transit ends too); return its row."""
    time_ms = time_ms if time_ms is not None else now_ms()
    if not reason.strip():
        raise InvalidInput("a reason is required to cancel an order")
    with store.transaction() as conn:
        order = order_rows.get_order(conn, order_id)
        if order is None:
            raise NotFound(f"no transfer order {order_id!r}: list them with "
                           "`portwatch order list`")
        if order["status"] not in ("open", "departed"):
            raise Conflict(f"order {order_id} is {order['status']}: only an open or departed "
                           "order can be cancelled")
        trip = trip_rows.get_trip(conn, order_id)
        if trip is not None and trip["status"] == "in_transit":
            cancel_trip(conn, trip, reason, actor, time_ms, supervise)
        row = _apply(conn, {"action": "cancel", "order_id": order_id, "reason": reason},
                     actor, time_ms)
    return row
