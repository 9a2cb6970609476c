"""The rules, in the one order the runner applies them.

A rule is a module with ``NAME``, ``KINDS`` (the event kinds it reads), ``DEFAULTS`` (its
configuration), ``scope(fact)`` (whose state it keeps: a device, a lot, a plate) and a
pure ``update(state, fact, config) -> (state, findings)``. State is a JSON object; the
runner loads it before and stores it after, in the batch's transaction. Rules are timed
by ``fact.device_ts``, never by the wall clock, so a backlog replayed an hour late gives
the findings it would have given live.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Finding
from controller.supervision.rules import (
    device_alarms,
    device_time,
    lab_limits,
    one_ticket_per_visit,
    quarantine,
    rail_reconcile,
    refused_events,
    tare_history,
    trip_arrival,
    trip_corridor,
    trip_gap,
    trip_overdue,
    trip_stop,
    trip_tamper,
    trip_wrong_place,
    weighing_plausibility,
    weight_curve,
    wheels_off_deck,
)

State = dict[str, Any]
Update = Callable[[State, Fact, Mapping[str, Any]], tuple[State, Sequence[Finding]]]


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule as the runner sees it."""

    name: str
    kinds: frozenset[str]
    defaults: Mapping[str, Any]
    scope: Callable[[Fact], str]
    update: Update

    @classmethod
    def from_module(cls, module: ModuleType) -> Rule:
        return cls(name=module.NAME, kinds=frozenset(module.KINDS), defaults=module.DEFAULTS,
                   scope=module.scope, update=module.update)


RULES: tuple[Rule, ...] = tuple(Rule.from_module(m) for m in (
    device_alarms,        # the device's own alarms, paired into active alerts
    weighing_plausibility,  # a weighing's figures and plate checked against the registration
    device_time,          # custody events with impossible device times
    one_ticket_per_visit,  # a second ticket for one vehicle visit, from any cause
    refused_events,       # custody evidence a device could not keep
    tare_history,         # weighbridge fraud: a plate's tare against its own history
    weight_curve,         # weighbridge fraud: a weight curve that betrays interference
    wheels_off_deck,      # weighbridge fraud: weighed with a position sensor blocked
    # trip rules (trackers; controller facts trip_departed/trip_closed/tick). After
    # device_alarms, whose tracker alarms they turn into trip alerts. Those that judge the
    # path run before trip_arrival, so what a batch shows before the arrival (a detour, a
    # stop, a wrong place) is in the trip's history before the event that closes it; each
    # rule sees the arrival in the same fixes itself, so none depends on the closing.
    trip_tamper,          # tracker tamper / power loss during a trip
    trip_corridor,        # off the corridor (hysteresis, device-time order)
    trip_stop,            # standing still outside allowed zones
    trip_wrong_place,     # stopped in another destination, or ended far off the route
    trip_gap,             # no fix for too long (ticks)
    trip_overdue,         # not arrived by the deadline (ticks)
    trip_arrival,         # in the destination zone: the trip closes
    # lab samples (their lot added by controller/samples.py before the rules run)
    quarantine,           # a quarantine pest: the lot on hold at once
    lab_limits,           # moisture or impurity over the commodity's limit
))
# the rail yard: a passage against its manifest (train matched by controller/trains.py)
RULES += (Rule.from_module(rail_reconcile),)
