"""Trips: a transfer order's truck leaving through the out-gate, supervised until it
arrives. Every change is a ``trip`` decision in the ledger, made in the caller's
transaction with the rows it explains (controller/projections/orders.py folds them).

``depart`` is called by the out-gate's code when the barrier opens for an order's truck;
the trip rules (controller/supervision/rules/trip_*.py) learn of it through a controller
fact, ``trip_departed``, fed to the supervision runner in the same transaction, with the
corridor and zones the site gives the trip. Arrival (a fix inside the destination, in
device time) is found by the ``trip_arrival`` rule, whose finding closes the trip here.
``tick`` feeds the rules the controller's clock for every trip in transit (tracking gaps
and overdue arrivals are noticed while no fix arrives).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller import office_feed
from controller.errors import Conflict, NotFound
from controller.facts import Fact
from controller.projections import orders as fold
from controller.site import Site, SiteError, current_site
from controller.storage import ledger_log
from controller.storage import orders as order_rows
from controller.storage import trips as trip_rows
from controller.storage.database import transaction
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

log = logging.getLogger("portwatch.trips")

Supervise = Callable[[sqlite3.Connection, Sequence[Fact]], Any]
# zones where a truck may stand still without a trip alert (besides its destination)
PORT_KINDS = ("port_area", "bonded_yard", "berth", "silo", "gate", "weighbridge", "rail_yard",
              "parking")


def _default_supervise() -> Supervise:
    from controller.supervision.runner import Runner  # the runner imports this module

    return Runner()


def record_trip(conn: sqlite3.Connection, body: Mapping[str, Any], actor: str,
                time_ms: int) -> int:
    """Append one ``trip`` decision and apply it to the rows; return its ledger index."""
    tid = str(body["trip_id"])
    idx = ledger_log.append_decision(conn, "trip", actor, dict(body), time_ms)
    order, trip = fold.trip_rows(order_rows.get_order(conn, tid), trip_rows.get_trip(conn, tid),
                                 body, time_ms)
    if order is not None:
        order_rows.put_order(conn, order)
    if trip is not None:
        trip_rows.put_trip(conn, trip)
    trip_rows.add_event(conn, fold.event_row(idx, body, actor, time_ms))
    # the destination's customs office gets the trip's new record in this transaction
    office_feed.note_trip_change(conn, tid, time_ms)
    return idx


def departure_fact(site: Site, trip: Mapping[str, Any], order: Mapping[str, Any],
                   time_ms: int) -> Fact:
    """The controller fact that tells the trip rules a trip started, with its geometry."""
    corridor = site.corridors[str(order["corridor"])]
    dest = site.zones[str(order["destination"])]
    deadline = min(int(order["window_end_ms"]), time_ms + corridor.max_minutes * 60_000)
    body = {
        "trip_id": trip["trip_id"], "departed_ts": time_ms, "deadline_ms": deadline,
        "corridor": {"id": corridor.id, "points": [list(p) for p in corridor.points],
                     "widths_m": list(corridor.widths_m)},
        "destination": {"id": dest.id, "polygon": [list(p) for p in dest.polygon]},
        "allowed": [{"id": z.id, "polygon": [list(p) for p in z.polygon]}
                    for z in site.zones.values() if z.kind in PORT_KINDS],
        "other_destinations": [{"id": z.id, "polygon": [list(p) for p in z.polygon]}
                               for z in site.zones_of_kind("destination") if z.id != dest.id]}
    return Fact(device_id=str(order["tracker_id"]), seq=0, boot=0, kind="trip_departed",
                device_ts=time_ms, received_ms=time_ms, body=body)


def depart(conn: sqlite3.Connection, order_id: str, *, gate_device: str, weighing_seq: int,
           net_kg: int, time_ms: int, supervise: Supervise | None = None,
           site: Site | None = None) -> dict[str, Any]:
    """The order's truck left through the out-gate: the order becomes departed and its trip
    starts (a ``trip`` decision), and the trip rules are told. Returns the trip row.

    NotFound for an unknown order, Conflict when it is not open (cancelled, or gone)."""
    with transaction(conn):
        order = order_rows.get_order(conn, order_id)
        if order is None:
            raise NotFound(f"no transfer order {order_id!r}: create it first "
                           "(portwatch order create)")
        if order["status"] != "open":
            raise Conflict(f"order {order_id} is {order['status']}, not open: a truck can "
                           "leave only on an open order")
        _end_earlier_trip(conn, str(order["tracker_id"]), order_id, gate_device, time_ms)
        body = {"trip_id": order_id, "event": "departed", "ts": time_ms,
                **{f: order[f] for f in ("tracker_id", "plate", "lot", "destination",
                                          "corridor")},
                "gate_device": gate_device, "weighing_seq": weighing_seq, "net_kg": net_kg}
        record_trip(conn, body, f"gate:{gate_device}", time_ms)
        trip = trip_rows.get_trip(conn, order_id)
        assert trip is not None
        try:
            fact = departure_fact(site or current_site(), trip, order, time_ms)
        except (KeyError, SiteError) as exc:
            # the truck has left: the trip stands, but no rule can judge it without its
            # corridor and zones; say so loudly rather than undo the gate's decision
            _unsupervised(conn, trip, order, f"{type(exc).__name__}: {exc}", time_ms)
            return trip
        (supervise or _default_supervise())(conn, [fact])
    return trip


def _unsupervised(conn: sqlite3.Connection, trip: Mapping[str, Any],
                  order: Mapping[str, Any], why: str, time_ms: int) -> None:
    log.error("trip %s left but cannot be supervised: %s", trip["trip_id"], why)
    apply_alert(conn, "trips", Alert(
        code="trip_unsupervised", device_id=str(order["tracker_id"]), active=True,
        severity="critical", subject=str(trip["trip_id"]),
        detail={"trip_id": trip["trip_id"], "corridor": order["corridor"],
                "destination": order["destination"], "why": why[:200]}),
        device_ts=None, received_ms=time_ms)


def _end_earlier_trip(conn: sqlite3.Connection, tracker_id: str, order_id: str,
                      gate_device: str, time_ms: int) -> None:
    """A tracker leaving on a new order while its last trip is in transit: that trip ends
    (cancelled, saying why) and ``tracker_reused`` is raised, since one tracker cannot
    vouch for two trucks: the earlier truck's route is unsupervised from now on."""
    earlier = trip_rows.open_trip_for_tracker(conn, tracker_id)
    if earlier is None:
        return
    reason = f"its tracker {tracker_id} left on order {order_id} through {gate_device}"
    record_trip(conn, {"trip_id": earlier["trip_id"], "event": "cancelled", "ts": time_ms,
                       "reason": reason}, f"gate:{gate_device}", time_ms)
    apply_alert(conn, "trips", Alert(
        code="tracker_reused", device_id=tracker_id, active=True, severity="warning",
        subject=str(earlier["trip_id"]),
        detail={"trip_id": earlier["trip_id"], "new_order": order_id, "reason": reason}),
        device_ts=None, received_ms=time_ms)


def record_event(conn: sqlite3.Connection, trip_id: str, event: str, ts: int,
                 detail: Mapping[str, Any], *, actor: str, time_ms: int) -> int | None:
    """A rule's event on a trip (``arrived`` closes it); None when the trip is unknown."""
    if trip_rows.get_trip(conn, trip_id) is None:
        log.warning("%s reported %s on trip %s, which is not stored; ignored", actor, event,
                    trip_id)
        return None
    return record_trip(conn, {**detail, "trip_id": trip_id, "event": event, "ts": ts},
                       actor, time_ms)


def close_fact(tracker_id: str, trip_id: str, time_ms: int) -> Fact:
    """The controller fact that tells the trip rules a trip was ended by the controller."""
    return Fact(device_id=tracker_id, seq=0, boot=0, kind="trip_closed", device_ts=time_ms,
                received_ms=time_ms, body={"trip_id": trip_id})


def tick(conn: sqlite3.Connection, now_ms: int, supervise: Supervise | None = None) -> int:
    """Feed the rules a ``tick`` (controller clock) for every trip in transit; return how
    many. Runs in its own transaction unless the caller has one open."""
    with transaction(conn):
        facts = [Fact(device_id=str(t["tracker_id"]), seq=0, boot=0, kind="tick",
                      device_ts=now_ms, received_ms=now_ms, body={"trip_id": t["trip_id"]})
                 for t in trip_rows.open_trips(conn)]
        if facts:
            (supervise or _default_supervise())(conn, facts)
    return len(facts)


def cancel_trip(conn: sqlite3.Connection, trip: Mapping[str, Any], reason: str, actor: str,
                time_ms: int, supervise: Supervise | None = None) -> None:
    """End a trip in transit because its order was cancelled (a ``trip`` decision)."""
    record_trip(conn, {"trip_id": trip["trip_id"], "event": "cancelled", "ts": time_ms,
                       "reason": reason}, actor, time_ms)
    (supervise or _default_supervise())(
        conn, [close_fact(str(trip["tracker_id"]), str(trip["trip_id"]), time_ms)])
