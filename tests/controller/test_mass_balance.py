"""Mass balance per lot: the pure arithmetic at its exact tolerance edges, then a real store
(lots, berth weighings through the ingest writer, trips, a draft survey) with the
``mass_balance_discrepancy`` alert raised and cleared and the draft survey in the ledger."""

from __future__ import annotations

from typing import Any

import pytest

from controller import lots, mass_balance, registry
from controller.audit import audit_store
from controller.errors import InvalidInput, NotFound
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.mass_balance import Reading, compute, draft_reading
from controller.storage import Store, transaction
from ctl_helpers import SITE, signed

T0 = 1764072000000
BERTH = frozenset({"wb-berth"})


def _codes(out: dict[str, Any]) -> list[str]:
    return [d["code"] for d in out["discrepancies"]]


def test_balance_quadrature_edge_unloaded_vs_declared() -> None:
    # two readings with MPE 30 and 40 kg: combined sqrt(900 + 1600) = 50 kg exactly
    unloads = [Reading(50_000, 30), Reading(50_000, 40)]
    at_edge = compute(100_050, None, unloads, [], [], unloading_done=True)
    assert _codes(at_edge) == [] and at_edge["unloaded"]["tolerance_kg"] == 50
    beyond = compute(100_051, None, unloads, [], [], unloading_done=True)
    assert _codes(beyond) == ["unloaded_vs_declared"]
    assert beyond["discrepancies"][0]["difference_kg"] == -51
    below = compute(99_949, None, unloads, [], [], unloading_done=True)
    assert _codes(below) == ["unloaded_vs_declared"]


def test_balance_unloading_in_progress_not_compared_with_declared() -> None:
    out = compute(100_000, None, [Reading(30_000, 40)], [], [], unloading_done=False)
    assert _codes(out) == [] and out["remaining_kg"] == 30_000


def test_balance_dispatched_exceeds_unloaded_edge() -> None:
    # unloaded 60 t (MPE 40 kg), trucks 30 t + 30 t (MPE 40 kg each) -> sqrt(3*1600) = 69.28
    unloads, trucks = [Reading(60_000, 40)], [Reading(30_000, 40), Reading(30_000, 40)]
    over = [Reading(30_069, 40)]  # 69^2 = 4761 <= 4800: within
    assert _codes(compute(60_000, None, unloads, [trucks[0]], over, False)) == []
    over = [Reading(30_070, 40)]  # 70^2 = 4900 > 4800: beyond
    out = compute(60_000, None, unloads, [trucks[0]], over, False)
    assert _codes(out) == ["dispatched_exceeds_unloaded"]
    assert out["discrepancies"][0]["tolerance_kg"] == 70  # 69.28 rounded up for display
    assert out["dispatched"]["truck"]["trips"] == 1 and out["dispatched"]["rail"]["cars"] == 1
    assert out["remaining_kg"] == -70


def test_balance_draft_survey_stands_for_unloaded_and_is_the_reference() -> None:
    draft = draft_reading(50_000)  # 0.5 %: 250 kg
    assert draft.mpe_kg == 250
    only_draft = compute(50_250, draft, [], [], [], unloading_done=True)
    assert only_draft["unloaded"]["source"] == "draft_survey" and _codes(only_draft) == []
    assert _codes(compute(50_251, draft, [], [], [], unloading_done=True)) == [
        "unloaded_vs_declared"]
    # weighed: compared with the draft, not the declaration (sqrt(250^2 + 0) = 250)
    weighed = compute(70_000, draft, [Reading(50_250, 0)], [], [], unloading_done=True)
    assert _codes(weighed) == []
    assert weighed["unloaded"]["source"] == "scales"


def test_balance_nothing_unloaded_declared_stands_in() -> None:
    out = compute(10_000, None, [], [Reading(10_000, 20)], [], unloading_done=False)
    assert out["unloaded"]["source"] == "declared" and _codes(out) == []
    assert _codes(compute(10_000, None, [], [Reading(10_021, 20)], [], False)) == [
        "dispatched_exceeds_unloaded"]


# -- on a real store --------------------------------------------------------------------


def _lot(db: Store, declared: int = 60_000) -> None:
    lots.declare(db, {"lot_id": "LOT-1", "declaration_no": "D-1", "commodity": "wheat",
                      "hs_code": "100199", "origin_country": "UA", "vessel": "MV Test",
                      "declared_kg": declared, "kind": "grain"}, actor="test", at_ms=T0 - 10)


def _status(db: Store, status: str, at: int) -> None:
    lots.change_status(db, "LOT-1", status, reason="test", actor="test", at_ms=at)


def _weigh(db: Store, device: dict[str, Any], seq: int, ts: int, net: int) -> None:
    body = {"plate": "辽B12345", "gross_kg": net + 15000, "tare_kg": 15000, "net_kg": net,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": ts, "model": "sim"}
    commit_batch(db.conn, [check_message(signed(device, seq=seq, ts=ts, body=body,
                                                received_ms=ts + 500),
                                         site=SITE, keys=registry.secrets_by_device(db))])


def _trip(db: Store, trip_id: str, net: int) -> None:
    with transaction(db.conn) as conn:
        conn.execute("INSERT INTO trips (trip_id, tracker_id, plate, lot, gate_device, "
                     "weighing_seq, net_kg, departed_ms, status) VALUES (?, 'trk', 'p', "
                     "'LOT-1', 'wb-out', 1, ?, ?, 'in_transit')", [trip_id, net, T0 + 99])


def _alerts(db: Store) -> list[tuple[str, bool]]:
    return [(str(r[0]), r[1] is None) for r in db.conn.execute(
        "SELECT subject, cleared_ms FROM alerts WHERE code=? ORDER BY id",
        [mass_balance.CODE])]


def test_mass_balance_store_unloading_weighings_trips_and_alert(db: Store) -> None:
    berth = registry.provision(db, device_id="wb-berth", site=SITE, kind="weighbridge",
                               driver={})
    _lot(db, declared=60_000)
    _weigh(db, berth, 1, T0 - 5, 30_000)  # before unloading: not the lot's
    _status(db, "anchorage_quarantine", T0)
    _status(db, "unloading", T0 + 10)
    _weigh(db, berth, 2, T0 + 20, 30_000)
    _weigh(db, berth, 3, T0 + 30, 30_000)
    _status(db, "stored", T0 + 40)
    _weigh(db, berth, 4, T0 + 50, 30_000)  # after: not the lot's
    with transaction(db.conn) as conn:
        out = mass_balance.evaluate(conn, "LOT-1", time_ms=T0 + 60, devices=BERTH)
    assert out["unloaded"] == {"kg": 60_000, "source": "scales", "readings": 2,
                               "tolerance_kg": 57}  # 2 x 40 kg in quadrature: 56.57
    assert out["discrepancies"] == [] and _alerts(db) == []
    _trip(db, "t-1", 30_000)
    _trip(db, "t-2", 30_100)  # 100 kg more left than came in
    with transaction(db.conn) as conn:
        out = mass_balance.evaluate(conn, "LOT-1", time_ms=T0 + 70, devices=BERTH)
    assert _codes(out) == ["dispatched_exceeds_unloaded"] and out["remaining_kg"] == -100
    assert _alerts(db) == [("LOT-1", True)]
    db.conn.execute("UPDATE trips SET net_kg=30000 WHERE trip_id='t-2'")  # corrected
    with transaction(db.conn) as conn:
        mass_balance.evaluate(conn, "LOT-1", time_ms=T0 + 80, devices=BERTH)
    assert _alerts(db) == [("LOT-1", False)]  # cleared


def test_mass_balance_draft_survey_ledger_alert_and_refusals(db: Store) -> None:
    _lot(db, declared=60_000)
    _status(db, "anchorage_quarantine", T0)
    _status(db, "unloading", T0 + 10)
    _status(db, "stored", T0 + 40)
    out = mass_balance.add_draft_survey(db, "LOT-1", kg=61_000, surveyor="SGS",
                                        actor="cli:ann", at_ms=T0 + 50)
    # 61 000 vs 60 000 declared, the draft's 0.5 % is 305 kg: beyond
    assert _codes(out) == ["unloaded_vs_declared"] and out["draft_survey_kg"] == 61_000
    assert _alerts(db) == [("LOT-1", True)]
    with pytest.raises(InvalidInput, match="kg"):
        mass_balance.add_draft_survey(db, "LOT-1", kg=0, surveyor="SGS", actor="a")
    with pytest.raises(NotFound, match="not declared"):
        mass_balance.add_draft_survey(db, "LOT-9", kg=1, surveyor="SGS", actor="a")
    assert not [m for m in audit_store(db.conn).mismatches if m.table == "draft_surveys"]
    db.conn.execute("UPDATE draft_surveys SET kg=60000")
    assert [(m.table, m.problem) for m in audit_store(db.conn).mismatches
            if m.table == "draft_surveys"] == [("draft_surveys", "edited")]


def _train(db: Store, weights: list[int]) -> None:
    """A train manifest of LOT-1 cars matched to rail-1's passage seq 1 (rows as the rail
    work's projection and train decisions make them)."""
    with transaction(db.conn) as conn:
        conn.execute("INSERT INTO trains (train_id, reader, direction, status, created_ms, "
                     "passage_device, passage_seq) VALUES ('T-1', 'rail-1', 'out', 'passed', "
                     "?, 'rail-1', 1)", [T0])
        for i, kg in enumerate(weights):
            conn.execute("INSERT INTO train_cars (train_id, idx, initial, number, lot, "
                         "declared_kg) VALUES ('T-1', ?, 'DLCX', ?, 'LOT-1', ?)",
                         [i, 100 + i, kg])
            conn.execute("INSERT INTO passage_cars (device_id, seq, idx, direction, "
                         "started_ts, role, initial, number, weight_kg) VALUES ('rail-1', 1, "
                         "?, 'out', ?, 'car', 'DLCX', ?, ?)", [i, T0 + 100, 100 + i, kg])


@pytest.mark.parametrize(("second_car", "codes"), [
    # the draft's 600 kg, the first car's 300 kg, the second's 0.5 % of 60 736 or 60 737 kg
    # rounded up: 304 kg -> 600^2 + 300^2 + 304^2 = 542416
    (60_736, []),  # 736^2 = 541696 <= 542416
    (60_737, ["dispatched_exceeds_unloaded"]),  # 737^2 = 543169 > 542416
])
def test_mass_balance_rail_cars_at_their_certificate_class_edge(
        db: Store, second_car: int, codes: list[str]) -> None:
    registry.provision(db, device_id="rail-1", site=SITE, kind="rail_reader", driver={})
    from controller import calibration

    calibration.add(db, "rail-1", certificate_id="R-1", accuracy_class="0.5", e_kg=None,
                    issued_ms=T0 - 1000, expires_ms=T0 + 365 * 86_400_000, issuer="x",
                    actor="t")
    _lot(db, declared=120_000)
    mass_balance.add_draft_survey(db, "LOT-1", kg=120_000, surveyor="S", actor="t",
                                  at_ms=T0)  # 0.5 %: 600 kg
    _train(db, [60_000, second_car])  # class 0.5 in service: 300 kg per 60 t wagon
    with transaction(db.conn) as conn:
        out = mass_balance.evaluate(conn, "LOT-1", time_ms=T0 + 200, devices=BERTH)
    assert out["dispatched"]["rail"]["cars"] == 2
    assert _codes(out) == codes


def test_mass_balance_rail_car_without_certificate_uses_widest_class(db: Store) -> None:
    _lot(db, declared=60_000)
    _train(db, [60_000])
    out = mass_balance.balance(db.conn, "LOT-1", BERTH)
    assert out["dispatched"]["rail"]["tolerance_kg"] == 1_200  # class 2: 2 % of 60 t


def test_mass_balance_supervise_after_berth_and_departure_weighings(db: Store) -> None:
    """The ingest's hook: the demo site with a weighbridge added in its berth zone (a real
    Site object); a berth weighing while the lot unloads and an out-gate weighing that made
    a trip each re-evaluate the lot; the alert's decisions replay in the audit."""
    import dataclasses
    from pathlib import Path

    from controller import site as site_mod
    from controller.site.model import DeviceSpec

    demo = site_mod.set_site(Path(mass_balance.__file__).parent / "site" / "sites"
                             / "demo-grain-port.yaml")
    assert demo is not None
    berth_zone = demo.zones_of_kind("berth")[0].id
    site_mod.set_site(dataclasses.replace(demo, devices={
        **demo.devices, "wb-berth": DeviceSpec("wb-berth", "weighbridge", berth_zone, "in")}))
    try:
        assert mass_balance.unload_devices() == frozenset({"wb-berth"})
        berth = registry.provision(db, device_id="wb-berth", site=SITE, kind="weighbridge",
                                   driver={})
        out_gate = registry.provision(db, device_id="wb-out", site=SITE, kind="weighbridge",
                                      driver={})
        _lot(db, declared=30_000)
        _status(db, "anchorage_quarantine", T0)
        _status(db, "unloading", T0 + 10)

        def weigh(device: dict[str, Any], seq: int, ts: int, net: int) -> list[str]:
            body = {"plate": "辽B12345", "gross_kg": net + 15000, "tare_kg": 15000,
                    "net_kg": net, "division_kg": 20, "stable_ms": 3000, "arrived_ts": ts,
                    "model": "sim"}
            seen: list[str] = []
            commit_batch(db.conn, [check_message(
                signed(device, seq=seq, ts=ts, body=body, received_ms=ts + 500), site=SITE,
                keys=registry.secrets_by_device(db))],
                supervise=lambda conn, facts: seen.extend(mass_balance.supervise(conn, facts))
                or [])
            return seen

        assert weigh(berth, 1, T0 + 20, 30_000) == ["LOT-1"]
        _status(db, "stored", T0 + 40)
        with transaction(db.conn) as conn:  # the gate made trip t-1 on wb-out seq 1
            conn.execute("INSERT INTO trips (trip_id, tracker_id, plate, lot, gate_device, "
                         "weighing_seq, net_kg, departed_ms, status) VALUES ('t-1', 'trk', "
                         "'p', 'LOT-1', 'wb-out', 1, 30500, ?, 'in_transit')", [T0 + 50])
        assert weigh(out_gate, 1, T0 + 50, 30_500) == ["LOT-1"]
        assert _alerts(db) == [("LOT-1", True)]  # 500 kg out more than came in
        assert not [m for m in audit_store(db.conn).mismatches if m.table == "alerts"]
    finally:
        site_mod.set_site(None)


def test_mass_balance_overlapping_unloading_latest_started_lot_takes_weighing(
        db: Store) -> None:
    berth = registry.provision(db, device_id="wb-berth", site=SITE, kind="weighbridge",
                               driver={})
    for lot in ("LOT-1", "LOT-2"):
        lots.declare(db, {"lot_id": lot, "declaration_no": f"D-{lot}", "commodity": "wheat",
                          "hs_code": "100199", "origin_country": "UA", "vessel": "MV",
                          "declared_kg": 30_000, "kind": "grain"}, actor="t", at_ms=T0)
    for lot, at in (("LOT-1", T0 + 10), ("LOT-2", T0 + 15)):
        lots.change_status(db, lot, "anchorage_quarantine", reason="t", actor="t", at_ms=at)
        lots.change_status(db, lot, "unloading", reason="t", actor="t", at_ms=at)
    _weigh(db, berth, 1, T0 + 12, 10_000)  # only LOT-1 unloading
    _weigh(db, berth, 2, T0 + 20, 20_000)  # both: LOT-2 started later
    one = mass_balance.balance(db.conn, "LOT-1", BERTH)["unloaded"]
    two = mass_balance.balance(db.conn, "LOT-2", BERTH)["unloaded"]
    assert (one["kg"], one["readings"]) == (10_000, 1)
    assert (two["kg"], two["readings"]) == (20_000, 1)


def test_mass_balance_supervise_failure_leaves_batch_committed(
        db: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault injected into the balance's store read (monkeypatched to raise): the batch's
    weighing is stored all the same and nothing of the balance is half-written."""
    berth = registry.provision(db, device_id="wb-berth", site=SITE, kind="weighbridge",
                               driver={})

    def broken(*_: Any) -> Any:
        raise RuntimeError("injected")

    monkeypatch.setattr(mass_balance, "unload_devices", lambda: BERTH)
    monkeypatch.setattr(mass_balance.reads, "lot_of_unloading_weighing", broken)
    body = {"plate": "辽B12345", "gross_kg": 45000, "tare_kg": 15000, "net_kg": 30000,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": T0, "model": "sim"}
    result = commit_batch(db.conn, [check_message(
        signed(berth, seq=1, ts=T0, body=body, received_ms=T0 + 500), site=SITE,
        keys=registry.secrets_by_device(db))], supervise=mass_balance.supervise)
    assert result.stored == 1
    assert db.conn.execute("SELECT count(*) FROM weighings").fetchone()[0] == 1
