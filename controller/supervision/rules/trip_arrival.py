"""A trip ends where it should: the first fix (device time) inside the trip's destination
zone gives an ``arrived`` trip event, which closes the trip and its order
(controller.trips.record_event). A backlog that shows an earlier arrival after the trip
closed changes nothing (the trip ends once)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Finding
from controller.supervision.trip_events import TripEvent
from controller.supervision.trip_track import (
    TRIP_KINDS,
    fixes_of,
    fresh,
    lifecycle,
    note_arrival,
)

NAME = "trip_arrival"
KINDS = TRIP_KINDS - {"tick"}  # the clock alone changes nothing here
DEFAULTS: Mapping[str, Any] = {}


def scope(fact: Fact) -> str:
    return fact.device_id


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    started = lifecycle(state, fact, {})
    if started is not None:
        return started, []
    trip = state.get("trip")
    if not trip or trip["arrived"] is not None or fact.kind != "positions":
        return state, []
    state = fresh(state)
    trip = state["trip"]
    if not note_arrival(trip, fixes_of(fact, trip)):
        return state, []
    return state, [TripEvent(trip["id"], "arrived", trip["arrived"],
                             {"zone": trip["destination"]["id"]})]
