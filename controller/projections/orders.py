"""Transfer orders, trips and trip events as projections of the ledger's decisions.

Orders and trips are made by the controller, not by a device: each change is an ``order``
or ``trip`` decision in the ledger, and the rows of ``orders``, ``trips`` and
``trip_events`` are what folding those decisions in log order makes. The writer
(controller/trips.py) and the audit (controller/audit_trips.py) use the same fold, so a
row can always be rebuilt from the log.

``order`` decision bodies: ``{"action": "create", "order": {...fields}}`` and
``{"action": "cancel", "order_id", "reason"}``. ``trip`` decision bodies:
``{"trip_id", "event", "ts", ...}``; ``departed`` carries the order's fields with the
departure weighing (gate_device, weighing_seq, net_kg), ``arrived`` closes the trip, any
other event (a rule's finding) only adds a trip event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

Row = dict[str, Any]

ORDER_COLUMNS = ("order_id", "lot", "plate", "tracker_id", "destination", "corridor",
                 "window_start_ms", "window_end_ms", "expected_net_kg", "status", "created_ms",
                 "created_by", "updated_ms", "cancel_reason")
TRIP_COLUMNS = ("trip_id", "tracker_id", "plate", "lot", "destination", "corridor",
                "gate_device", "weighing_seq", "net_kg", "departed_ms", "status", "arrived_ts",
                "closed_ms", "end_reason")
EVENT_COLUMNS = ("idx", "trip_id", "event", "time_ms", "actor", "detail_json")
ORDER_FIELDS = ("order_id", "lot", "plate", "tracker_id", "destination", "corridor",
                "window_start_ms", "window_end_ms", "expected_net_kg")
_TRIP_FROM_ORDER = ("tracker_id", "plate", "lot", "destination", "corridor")


def order_row(current: Row | None, body: Mapping[str, Any], actor: str,
              time_ms: int) -> Row | None:
    """The ``orders`` row after one ``order`` decision (None: the decision changes none)."""
    action = body.get("action")
    if action == "create" and current is None:
        o = body.get("order") or {}
        return {**{c: None for c in ORDER_COLUMNS}, **{f: o.get(f) for f in ORDER_FIELDS},
                "status": "open", "created_ms": time_ms, "created_by": actor,
                "updated_ms": time_ms}
    if action == "cancel" and current is not None:
        return {**current, "status": "cancelled", "updated_ms": time_ms,
                "cancel_reason": body.get("reason")}
    return None


def trip_rows(order: Row | None, trip: Row | None, body: Mapping[str, Any],
              time_ms: int) -> tuple[Row | None, Row | None]:
    """(order row, trip row) after one ``trip`` decision (None: unchanged)."""
    event = body.get("event")
    if event == "departed" and trip is None:
        new_trip: Row = {**{c: None for c in TRIP_COLUMNS}, "trip_id": body.get("trip_id"),
                         **{f: body.get(f) for f in _TRIP_FROM_ORDER},
                         "gate_device": body.get("gate_device"),
                         "weighing_seq": body.get("weighing_seq"), "net_kg": body.get("net_kg"),
                         "departed_ms": time_ms, "status": "in_transit"}
        new_order = None if order is None else {**order, "status": "departed",
                                                 "updated_ms": time_ms}
        return new_order, new_trip
    if event in ("arrived", "cancelled") and trip is not None and trip["status"] == "in_transit":
        status = "arrived" if event == "arrived" else "cancelled"
        closed = {**trip, "status": status, "closed_ms": time_ms,
                  "arrived_ts": body.get("ts") if event == "arrived" else None,
                  "end_reason": body.get("reason")}
        new_order = None if order is None else {**order, "status": status,
                                                 "updated_ms": time_ms}
        return new_order, closed
    return None, None


def event_row(idx: int, body: Mapping[str, Any], actor: str, time_ms: int) -> Row:
    """The ``trip_events`` row of one ``trip`` decision (every one makes one)."""
    detail = {k: v for k, v in body.items() if k not in ("trip_id", "event")}
    return {"idx": idx, "trip_id": body.get("trip_id"), "event": body.get("event"),
            "time_ms": time_ms, "actor": actor,
            "detail_json": json.dumps(detail, sort_keys=True, ensure_ascii=False)}


class Book:
    """The three tables rebuilt in memory by folding decisions in log order (the audit)."""

    def __init__(self) -> None:
        self.orders: dict[str, Row] = {}
        self.trips: dict[str, Row] = {}
        self.events: dict[int, Row] = {}

    def apply(self, idx: int, kind: str, actor: str, body: Mapping[str, Any],
              time_ms: int) -> None:
        """Fold one decision (kinds other than ``order`` and ``trip`` are ignored)."""
        if kind == "order":
            oid = str(body.get("order_id") or (body.get("order") or {}).get("order_id"))
            row = order_row(self.orders.get(oid), body, actor, time_ms)
            if row is not None:
                self.orders[oid] = row
        elif kind == "trip":
            tid = str(body.get("trip_id"))
            order, trip = trip_rows(self.orders.get(tid), self.trips.get(tid), body, time_ms)
            if order is not None:
                self.orders[tid] = order
            if trip is not None:
                self.trips[tid] = trip
            self.events[idx] = event_row(idx, body, actor, time_ms)
