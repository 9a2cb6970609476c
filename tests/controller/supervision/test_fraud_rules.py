"""Weighbridge fraud controls: scripted timelines through the pure rules (tare history,
weight curve, wheels off the deck, the second-ticket tolerance in R76 terms), and the
rules registered and run on a real store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.facts import Fact
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.plausibility import Limits
from controller.storage import Store
from controller.supervision.findings import Alert
from controller.supervision.rules import (
    RULES,
    one_ticket_per_visit,
    tare_history,
    weight_curve,
    wheels_off_deck,
)
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed

T0 = 1_764_072_000_000
HONEST_CURVE = [42, 2300, 20, 1, 0]  # samples, settle_ms, max_step_kg, reversals, restarts


def weighing(seq: int, gross: int, tare: int, *, plate: str = "辽B12345", division: int = 20,
             device: str = "wb-1", at_s: float | None = None, **extra: Any) -> Fact:
    ts = T0 + int((at_s if at_s is not None else seq * 600) * 1000)
    return Fact(device, seq, 1, "weighing", ts, ts + 5,
                {"plate": plate, "gross_kg": gross, "tare_kg": tare, "net_kg": gross - tare,
                 "division_kg": division, "stable_ms": 3000, "arrived_ts": ts - 8000,
                 **extra})


def run(module: Any, facts: Sequence[Fact],
        config: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[Alert]]:
    state: dict[str, Any] = {}
    out: list[Alert] = []
    for fact in facts:
        state, found = module.update(state, fact, {**module.DEFAULTS, **(config or {})})
        out += found
    return state, out


def _tares(*tares: int, plate: str = "辽B12345") -> list[Fact]:
    return [weighing(i, t + 30000, t, plate=plate) for i, t in enumerate(tares, 1)]


def test_tare_history_within_mpe_and_allowance_is_quiet() -> None:
    # median 15000 kg (750 e at e = 20: in-service MPE 2 e = 40 kg) + 10 e = 240 kg allowed
    state, found = run(tare_history, _tares(15000, 15020, 14980, 15000, 15240, 14760))
    assert found == []
    assert state["tares"] == [15020, 14980, 15000, 15240, 14760]  # the last 5


def test_tare_history_beyond_mpe_and_allowance_raises_tare_deviation() -> None:
    _, found = run(tare_history, _tares(15000, 15020, 14980, 15260))
    [alert] = found
    assert (alert.code, alert.severity, alert.subject) == ("tare_deviation", "warning",
                                                          "seq 4")
    assert alert.detail["median_kg"] == 15000 and alert.detail["diff_kg"] == 260
    assert alert.detail["diff_e"] == 13.0 and alert.detail["allowed_kg"] == 240
    # lighter counts too: cargo taken for the truck's own weight
    _, lighter = run(tare_history, _tares(15000, 15020, 14980, 14700))
    assert [a.detail["diff_kg"] for a in lighter] == [-300]


def test_tare_history_judges_in_the_registered_division_and_waits_for_history() -> None:
    facts = _tares(15000, 15000, 15300)  # only 2 known before the third: not judged
    assert run(tare_history, facts)[1] == []
    # registered e = 50 kg: MPE at 300 e is 1 e = 50 kg, + 10 e = 550 kg: 300 kg is fine
    coarse = [replace(f, limits=Limits(division_kg=50)) for f in _tares(15000, 15000,
                                                                         15000, 15300)]
    assert run(tare_history, coarse)[1] == []
    fine = _tares(15000, 15000, 15000, 15300)
    assert [a.detail["e_kg"] for a in run(tare_history, fine)[1]] == [20]


def test_tare_history_is_kept_per_plate_and_skips_no_plate_or_no_tare() -> None:
    assert tare_history.scope(weighing(1, 45000, 15000, plate="辽B1")) == "辽B1"
    state, found = run(tare_history, [weighing(1, 45000, 0), weighing(2, 45000, 15000,
                                                                       plate="")])
    assert (state, found) == ({}, [])


def test_weight_curve_honest_is_quiet_and_old_agents_are_not_judged() -> None:
    assert run(weight_curve, [weighing(1, 45240, 15000, curve=HONEST_CURVE),
                              weighing(2, 45240, 15000)])[1] == []


def test_weight_curve_step_while_stable_is_critical_interference() -> None:
    spliced = [40, 3100, 900, 0, 1]  # 900 kg (45 e) at once, the indicator still stable
    _, found = run(weight_curve, [weighing(7, 44340, 15000, curve=spliced)])
    [alert] = found
    assert (alert.code, alert.severity, alert.subject) == ("weight_curve_interference",
                                                          "critical", "seq 7")
    assert alert.detail["curve"]["max_step_kg"] == 900
    assert alert.detail["reasons"] == [
        "a step of 900 kg (45 e) between two stable readings (at most 5 e)"]


def test_weight_curve_nudged_reading_is_a_warning_with_every_reason() -> None:
    nudged = [90, 2000, 60, 9, 3]  # small steps, but up and down and restarted
    _, found = run(weight_curve, [weighing(3, 45240, 15000, curve=nudged)])
    [alert] = found
    assert alert.severity == "warning" and len(alert.detail["reasons"]) == 2
    assert "moved 3 times" in alert.detail["reasons"][0]
    assert "9 changes of direction" in alert.detail["reasons"][1]
    # the step threshold is in e: at e = 50 kg, 200 kg is 4 e
    assert run(weight_curve, [weighing(4, 45250, 15000, division=50,
                                       curve=[40, 2000, 200, 0, 0])])[1] == []


def test_wheels_off_deck_blocked_at_the_weighed_reading_is_critical() -> None:
    _, found = run(wheels_off_deck, [
        weighing(1, 45240, 15000, blocked=[]), weighing(2, 45240, 15000),
        weighing(3, 40720, 15000, blocked=["deck_left_blocked"])])
    [alert] = found
    assert (alert.code, alert.severity, alert.subject) == ("wheels_off_deck", "critical",
                                                          "seq 3")
    assert alert.detail["blocked"] == ["deck_left_blocked"]


def test_one_ticket_per_visit_tolerance_is_twice_the_r76_mpe_plus_a_person() -> None:
    cfg = one_ticket_per_visit.DEFAULTS
    # 45 t at e = 20 kg: 2250 e, in-service MPE 3 e = 60 kg: 2 x 60 + 5 e = 220 kg
    assert one_ticket_per_visit.tolerance_kg(45000, 20, cfg) == 220
    # 10 t at e = 20 kg: 500 e, MPE 1 e: 2 x 20 + 100 = 140 kg (0.5 % said 50 kg)
    assert one_ticket_per_visit.tolerance_kg(10000, 20, cfg) == 140
    _, found = run(one_ticket_per_visit, [weighing(1, 10000, 9000, at_s=0),
                                          weighing(2, 10140, 9000, at_s=60),
                                          weighing(3, 30000, 9000, at_s=120),
                                          weighing(4, 30240, 9000, at_s=180)])
    assert [(a.code, a.detail["first_seq"]) for a in found] == [("possible_second_ticket", 1)]


def test_fraud_rules_are_registered_and_run_on_a_real_store(
        db: Store, device: dict[str, Any]) -> None:
    names = [r.name for r in RULES]
    assert {"tare_history", "weight_curve", "wheels_off_deck"} <= set(names)
    from controller import registry
    keys = registry.secrets_by_device(db)
    body = {"plate": "辽B12345", "gross_kg": 45240, "tare_kg": 15000, "net_kg": 30240,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": T0 - 8000, "model": "sim"}
    msgs = [signed(device, seq=1, body={**body, "curve": [40, 3100, 900, 0, 1],
                                        "blocked": ["entry_blocked"]}, received_ms=T0)]
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                 supervise=Runner())
    got = sorted((a["code"], a["severity"]) for a in db.db["alerts"].rows)
    assert got == [("weight_curve_interference", "critical"), ("wheels_off_deck", "critical")]
