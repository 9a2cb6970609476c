"""Mass balance of a lot: declared, unloaded, dispatched by truck and rail, remaining; and
whether the differences are beyond what the instruments can explain.

Where the figures come from (controller/storage/mass_balance.py):

- unloaded: the net of every weighing by an unloading scale (a weighbridge or belt scale
  in a ``berth`` zone of the site) whose device time falls while the lot was
  ``unloading`` (the lot ``controller.lots.lot_unloading_at`` names then). Without such
  weighings, the lot's last draft survey (``POST /api/v1/lots/{lot}/draft-survey``);
  without either, nothing is known unloaded and the declared figure stands in;
- dispatched by truck: the net of each trip's out-gate departure weighing (trips carry
  their order's lot);
- dispatched by rail: each car of a train manifest loaded with the lot (``train_cars``)
  that the rail reader weighed in motion on the train's matched passage (``passage_cars``).

Tolerance: each instrument reading has its maximum permissible error (R76 class III at the
weighing's e for a truck scale, controller/weighing_tolerance.mpe_kg; R106 at the class of
the rail scale's certificate for a wagon, ``r106_wagon_mpe_kg``; a draft survey 0.5 % of
its figure, the accuracy usually claimed for one). They are combined in quadrature (root
sum of squares), not linearly: the errors of separate weighings are independent and of
either sign, so N readings all at their limit in one direction is not a credible outcome,
and a linear sum grows with N so fast that a loss of a few truckloads in a 50 000 t lot
would hide inside it. Quadrature still bounds a single reading by its own MPE. A figure
is a discrepancy when its difference d satisfies d^2 > sum(MPE^2), compared in integers so
no rounding decides an edge.

Discrepancies (alert ``mass_balance_discrepancy``, one per lot, cleared when gone):
``unloaded_vs_declared`` once unloading is over (the lot is past ``unloading``), the
unloaded figure against the draft survey (when there is one and the unloaded figure is
weighed) or the declaration; ``dispatched_exceeds_unloaded`` at any time, what left
against what came in.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from controller import calibration
from controller.errors import InvalidInput, NotFound
from controller.storage import Store, ledger_log, now_ms
from controller.storage import mass_balance as reads
from controller.storage.commands import savepoint
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert
from controller.weighing_tolerance import ToleranceError, mpe_kg, r106_wagon_mpe_kg

RULE = "mass_balance"
log = logging.getLogger("portwatch.mass_balance")
CODE = "mass_balance_discrepancy"
ALERT_DEVICE = "controller"  # a lot's balance is the controller's finding, no device's
DRAFT_SURVEY_PER_MILLE = 5  # 0.5 % of the figure
UNKNOWN_RAIL_CLASS = "2"  # no certificate on file: the widest R106 class
UNLOAD_KINDS = frozenset({"weighbridge", "belt_scale"})
DRAFT_KG_MAX = 10_000_000_000
_BEFORE_DONE = frozenset({"declared", "anchorage_quarantine", "unloading"})


@dataclass(frozen=True, slots=True)
class Reading:
    """One figure that goes into the balance and its maximum permissible error."""

    kg: int
    mpe_kg: int


@dataclass(frozen=True, slots=True)
class Discrepancy:
    code: str
    difference_kg: int
    tolerance_kg: int
    text: str


def _sq(readings: Iterable[Reading]) -> int:
    return sum(r.mpe_kg * r.mpe_kg for r in readings)


def _tolerance(sum_sq: int) -> int:
    """The combined tolerance in whole kg (rounded up), for display."""
    return math.isqrt(sum_sq - 1) + 1 if sum_sq > 0 else 0


def draft_reading(kg: int) -> Reading:
    """A draft survey's figure with its 0.5 % tolerance (rounded up to a kg)."""
    return Reading(kg, -(-kg * DRAFT_SURVEY_PER_MILLE // 1000))


def compute(declared_kg: int, draft: Reading | None, unloads: Sequence[Reading],
            trucks: Sequence[Reading], cars: Sequence[Reading],
            unloading_done: bool) -> dict[str, Any]:
    """The balance and its discrepancies from scripted figures (pure)."""
    if unloads:
        unloaded_kg, unloaded_sq, source = sum(r.kg for r in unloads), _sq(unloads), "scales"
    elif draft is not None:
        unloaded_kg, unloaded_sq, source = draft.kg, _sq([draft]), "draft_survey"
    else:
        unloaded_kg, unloaded_sq, source = declared_kg, 0, "declared"
    truck_kg, rail_kg = sum(r.kg for r in trucks), sum(r.kg for r in cars)
    dispatched_kg = truck_kg + rail_kg
    dispatched_sq = _sq(trucks) + _sq(cars)
    found: list[Discrepancy] = []
    if unloading_done and source != "declared":
        if source == "scales" and draft is not None:
            ref_kg, ref_sq, ref_name = draft.kg, _sq([draft]), "the draft survey"
        else:
            ref_kg, ref_sq, ref_name = declared_kg, 0, "the declaration"
        diff, sq = unloaded_kg - ref_kg, unloaded_sq + ref_sq
        if diff * diff > sq:
            found.append(Discrepancy(
                "unloaded_vs_declared", diff, _tolerance(sq),
                f"unloaded {unloaded_kg} kg ({source}) is {diff:+d} kg off {ref_name} "
                f"({ref_kg} kg), beyond the {_tolerance(sq)} kg the instruments allow"))
    excess, sq = dispatched_kg - unloaded_kg, dispatched_sq + unloaded_sq
    if excess > 0 and excess * excess > sq:
        found.append(Discrepancy(
            "dispatched_exceeds_unloaded", excess, _tolerance(sq),
            f"dispatched {dispatched_kg} kg exceeds unloaded {unloaded_kg} kg ({source}) by "
            f"{excess} kg, beyond the {_tolerance(sq)} kg the instruments allow"))
    return {
        "declared_kg": declared_kg,
        "draft_survey_kg": None if draft is None else draft.kg,
        "unloaded": {"kg": unloaded_kg, "source": source, "readings": len(unloads),
                     "tolerance_kg": _tolerance(unloaded_sq)},
        "dispatched": {"kg": dispatched_kg, "tolerance_kg": _tolerance(dispatched_sq),
                       "truck": {"kg": truck_kg, "trips": len(trucks),
                                 "tolerance_kg": _tolerance(_sq(trucks))},
                       "rail": {"kg": rail_kg, "cars": len(cars),
                                "tolerance_kg": _tolerance(_sq(cars))}},
        "remaining_kg": unloaded_kg - dispatched_kg,
        "unloading_done": unloading_done,
        "discrepancies": [{"code": d.code, "difference_kg": d.difference_kg,
                           "tolerance_kg": d.tolerance_kg, "text": d.text} for d in found],
    }


# -- the store's figures ---------------------------------------------------------------


def unload_devices() -> frozenset[str]:
    """The site's unloading scales: weighbridges and belt scales in a ``berth`` zone (empty
    without a usable site description)."""
    try:
        from controller.site import current_site

        site = current_site()
    except Exception:  # no site: nothing is known unloaded by scale, the draft stands
        return frozenset()
    berths = {z.id for z in site.zones_of_kind("berth")}
    return frozenset(d.id for d in site.devices.values()
                     if d.kind in UNLOAD_KINDS and d.zone in berths)


def _flagged(row: dict[str, Any]) -> bool:
    return "out_of_calibration" in json.loads(row.get("flags_json") or "[]")


def _scale_reading(net: int, e: Any, notes: list[str], what: str) -> Reading:
    try:
        return Reading(net, mpe_kg(max(net, 0), int(e or 0)))
    except ToleranceError as exc:
        notes.append(f"{what}: no tolerance ({exc})")
        return Reading(net, 0)


def _rail_reading(conn: sqlite3.Connection, car: dict[str, Any], notes: list[str]) -> Reading:
    kg = int(car["weight_kg"])
    at = car.get("device_ts") or car.get("time_ms")
    cert = None
    if car.get("device_id") and at is not None:
        cert = calibration.certificate(conn, str(car["device_id"]), int(at))
    cls = cert["accuracy_class"] if cert and cert["accuracy_class"] in \
        calibration.RAIL_CLASSES else UNKNOWN_RAIL_CLASS
    try:
        return Reading(kg, r106_wagon_mpe_kg(max(kg, 0), cls))
    except ToleranceError as exc:
        notes.append(f"car {car.get('car_id', '?')}: no tolerance ({exc})")
        return Reading(kg, 0)


def balance(conn: sqlite3.Connection, lot_id: str,
            devices: frozenset[str] | None = None) -> dict[str, Any]:
    """The balance of ``lot_id`` from the store; NotFound when the lot is not declared."""
    from controller.lots import get_lot  # the LOTS work's module, imported when used

    lot = get_lot(conn, lot_id)
    if lot is None:
        raise NotFound(f"lot {lot_id!r} is not declared: list lots with "
                       "`portwatch lot list`")
    devices = unload_devices() if devices is None else devices
    notes: list[str] = []
    unload_rows = reads.unloading_weighings(conn, lot_id, devices)
    truck_rows = reads.truck_departures(conn, lot_id)
    unloads = [_scale_reading(int(r["net_kg"]), r["division_kg"], notes,
                              f"{r['device_id']} seq {r['seq']}") for r in unload_rows]
    trucks = [_scale_reading(int(r["net_kg"] or 0), r["division_kg"], notes,
                             f"trip {r['trip_id']}") for r in truck_rows]
    cars = [_rail_reading(conn, c, notes) for c in reads.rail_cars(conn, lot_id)]
    survey = reads.latest_draft_survey(conn, lot_id)
    status = str(lot["status"])
    if status == "held":
        status = str(lot.get("held_from") or status)
    out = compute(int(lot["declared_kg"]),
                  None if survey is None else draft_reading(int(survey["kg"])),
                  unloads, trucks, cars, unloading_done=status not in _BEFORE_DONE)
    out["lot_id"] = lot_id
    out["status"] = lot["status"]
    out["out_of_calibration_readings"] = sum(map(_flagged, [*unload_rows, *truck_rows]))
    out["notes"] = notes
    return out


def evaluate(conn: sqlite3.Connection, lot_id: str, *, time_ms: int,
             devices: frozenset[str] | None = None) -> dict[str, Any]:
    """The balance, with the ``mass_balance_discrepancy`` alert of the lot raised or
    cleared to match it (inside the caller's transaction)."""
    out = balance(conn, lot_id, devices)
    found = out["discrepancies"]
    apply_alert(conn, RULE, Alert(
        code=CODE, device_id=ALERT_DEVICE, active=bool(found), severity="warning",
        subject=lot_id, detail={"lot_id": lot_id, "discrepancies": found,
                                "remaining_kg": out["remaining_kg"]} if found else {}),
        device_ts=None, received_ms=time_ms)
    return out


def evaluate_now(store: Store, lot_id: str) -> dict[str, Any]:
    """``evaluate`` in a transaction of its own at the controller's clock (on demand)."""
    with store.transaction() as conn:
        return evaluate(conn, lot_id, time_ms=now_ms())


def add_draft_survey(store: Store, lot_id: str, *, kg: int, surveyor: str, actor: str,
                     at_ms: int | None = None) -> dict[str, Any]:
    """Record a draft survey's figure for ``lot_id`` (a ledger decision ``draft_survey``)
    and re-evaluate the lot's balance; the balance."""
    if isinstance(kg, bool) or not 0 < kg <= DRAFT_KG_MAX:
        raise InvalidInput(f"kg must be a whole number of kg between 1 and {DRAFT_KG_MAX}")
    if not surveyor.strip() or len(surveyor) > 200:
        raise InvalidInput("give the surveyor (1-200 characters): it goes to the ledger")
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        from controller.lots import get_lot

        if get_lot(conn, lot_id) is None:
            raise NotFound(f"lot {lot_id!r} is not declared: declare it first "
                           "(`portwatch lot declare`)")
        survey_id = reads.insert_draft_survey(conn, lot_id, kg, surveyor, actor, now)
        ledger_log.append_decision(conn, "draft_survey", actor, {
            "survey_id": survey_id, "lot_id": lot_id, "kg": kg, "surveyor": surveyor}, now)
        return evaluate(conn, lot_id, time_ms=now)


def supervise(conn: sqlite3.Connection, facts: Sequence[Any]) -> list[str]:
    """Re-evaluate the lots a batch changed (inside its transaction): a weighing by an
    unloading scale (the lot unloading then), by an out-gate that made a trip (its lot), or
    a rail passage matched to a train (the lots on it). The lots evaluated. A failure is
    logged and leaves the batch alone (in a savepoint): the balance never stalls ingest."""
    try:
        with savepoint(conn, "mass_balance"):
            return _supervise(conn, facts)
    except Exception:  # a bug here must not lose the batch's custody events
        log.exception("mass balance not evaluated for a batch of %d facts (on demand: "
                      "portwatch lot balance LOT)", len(facts))
        return []


def _supervise(conn: sqlite3.Connection, facts: Sequence[Any]) -> list[str]:
    weighings = [f for f in facts if getattr(f, "kind", None) in ("weighing", "passage")]
    if not weighings:
        return []
    devices = unload_devices()
    lots: set[str] = set()
    for f in weighings:
        if f.kind == "passage":  # matched to its train by the rail rules before this runs
            lots.update(reads.lots_of_passage(conn, f.device_id, f.seq))
        elif f.device_id in devices:
            lot = reads.lot_of_unloading_weighing(conn, f.device_ts)
            if lot is not None:
                lots.add(lot)
        else:
            lots.update(reads.lots_of_departure(conn, f.device_id, f.seq))
    from controller.lots import get_lot  # imported when used, as in balance

    # an order may name a lot nobody declared (orders came before lots): it has no balance,
    # and balance's NotFound here would fail the whole batch and stop the ingest
    evaluated = sorted(lot for lot in lots if get_lot(conn, lot) is not None)
    for lot in evaluated:
        evaluate(conn, lot, time_ms=now_ms(), devices=devices)
    return evaluated
