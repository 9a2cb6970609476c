"""Release before test, the recall list and ore blends over a real SQLite store.

Trips are scripted rows (controller/storage/trips.put_trip, as the trip projection writes
them); rail cars are scripted train manifests (``trains``, ``train_cars``) and the
passages matched to them (``passage_cars``), as the rail path writes them.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller import blends, lots, recall
from controller.audit import AuditReport
from controller.audit_blends import audit_blends
from controller.errors import Conflict, InvalidInput, NotFound
from controller.storage import Store
from controller.storage import holds as hold_rows
from controller.storage import trips as trip_rows

T0 = 1_764_547_200_000  # 2025-12-01T00:00Z


def declare(db: Store, lot: str, *, commodity: str = "iron ore", country: str = "AU",
            kg: int = 50_000_000, kind: str = "ore") -> None:
    lots.declare(db, {"lot_id": lot, "declaration_no": f"D-{lot}", "commodity": commodity,
                      "hs_code": "260111", "origin_country": country, "vessel": "MV Iron",
                      "declared_kg": kg, "kind": kind}, actor="op", at_ms=T0)


def release_before_test(db: Store, lot: str, at: int = T0 + 1000) -> None:
    with db.transaction() as conn:
        for status in ("unloading", "stored"):
            lots.set_status(conn, lot, status, reason="ship", actor="op", time_ms=at)
        lots.set_status(conn, lot, "released", reason="released before test", actor="op",
                        time_ms=at, released_before_test=True)


def trip(db: Store, trip_id: str, lot: str, plate: str, departed: int, net: int,
         status: str = "arrived") -> None:
    with db.transaction() as conn:
        trip_rows.put_trip(conn, {
            "trip_id": trip_id, "tracker_id": "gps-1", "plate": plate, "lot": lot,
            "destination": "steel-mill", "corridor": "c1", "gate_device": "wb-out",
            "weighing_seq": 1, "net_kg": net, "departed_ms": departed, "status": status,
            "arrived_ts": departed + 3_600_000 if status == "arrived" else None,
            "closed_ms": None, "end_reason": None})


def cars(db: Store, train: str, status: str, released: int | None,
         rows: list[tuple[str, int, str, int, int | None]]) -> None:
    """A train manifest (initial, number, lot, declared kg, kg the reader weighed or None)
    and, when released, the rail reader's passage matched to it."""
    with db.transaction() as conn:
        # the rail schema's columns used here (made by the rail step where it has landed)
        conn.execute("CREATE TABLE IF NOT EXISTS trains (train_id TEXT PRIMARY KEY, "
                     "reader TEXT, direction TEXT, status TEXT, created_ms INTEGER, "
                     "passage_device TEXT, passage_seq INTEGER, released_ms INTEGER)")
        conn.execute("CREATE TABLE IF NOT EXISTS train_cars (train_id TEXT, idx INTEGER, "
                     "initial TEXT, number INTEGER, lot TEXT, destination TEXT, "
                     "declared_kg INTEGER)")
        conn.execute("CREATE TABLE IF NOT EXISTS passage_cars (device_id TEXT, seq INTEGER, "
                     "idx INTEGER, direction TEXT, started_ts INTEGER, role TEXT, "
                     "initial TEXT, number INTEGER, weight_kg INTEGER)")
        seq = len(conn.execute("SELECT * FROM trains").fetchall()) + 1
        conn.execute("INSERT INTO trains (train_id, reader, direction, status, created_ms, "
                     "passage_device, passage_seq, released_ms) VALUES (?,?,?,?,?,?,?,?)",
                     (train, "rail-1", "out", status, T0, "rail-1", seq, released))
        for idx, (initial, number, lot, declared, weighed) in enumerate(rows, 1):
            conn.execute("INSERT INTO train_cars (train_id, idx, initial, number, lot, "
                         "destination, declared_kg) VALUES (?,?,?,?,?,?,?)",
                         (train, idx, initial, number, lot, "inland-terminal", declared))
            if weighed is not None:
                conn.execute("INSERT INTO passage_cars (device_id, seq, idx, direction, "
                             "started_ts, role, initial, number, weight_kg) VALUES "
                             "(?,?,?,?,?,?,?,?,?)", ("rail-1", seq, idx, "out",
                                                     (released or T0) - 5000, "car",
                                                     initial, number, weighed))


@pytest.fixture
def ore(db: Store) -> Store:
    """Lots A (released before test) and B blended 3:1 into BL; trips and cars of each."""
    declare(db, "ORE-A")
    declare(db, "ORE-B", country="BR")
    declare(db, "ORE-C")
    release_before_test(db, "ORE-A")
    blends.create(db, "BL-1", [blends.BlendInput("ORE-A", 30_000), blends.BlendInput(
        "ORE-B", 10_000)], reason="contract grade 62", actor="op", time_ms=T0 + 2000)
    trip(db, "o-a1", "ORE-A", "AB1001", T0 + 10_000, 30_100)
    trip(db, "o-a2", "ORE-A", "AB1002", T0 + 20_000, 29_800, status="in_transit")
    trip(db, "o-bl", "BL-1", "AB2001", T0 + 30_000, 31_000)
    trip(db, "o-b", "ORE-B", "AB3001", T0 + 40_000, 28_000)
    trip(db, "o-c", "ORE-C", "AB4001", T0 + 50_000, 27_000)
    cars(db, "T-77", "released", T0 + 60_000, [("PWX", 1001, "ORE-A", 79_000, 80_150),
                                                ("PWX", 1002, "BL-1", 79_000, None)])
    cars(db, "T-78", "released", T0 + 70_000, [("PWX", 2001, "ORE-C", 81_000, 81_000)])
    cars(db, "T-79", "cancelled", None, [("PWX", 3001, "ORE-A", 80_000, None)])
    return db


def test_recall_list_names_trips_cars_and_blends_of_the_lot(ore: Store) -> None:
    found = recall.recall_list(ore.conn, "ORE-A")
    assert [(t["trip_id"], t["plate"], t["via"], t["fraction"]) for t in found["trips"]] == [
        ("o-a1", "AB1001", "ORE-A", 1.0), ("o-a2", "AB1002", "ORE-A", 1.0),
        ("o-bl", "AB2001", "BL-1", 0.75)]
    assert found["trips"][0]["net_kg"] == 30_100
    assert found["trips"][0]["arrived_ts"] == T0 + 10_000 + 3_600_000
    assert found["trips"][1]["arrived_ts"] is None  # still on the road
    assert [(c["train"], c["initial"], c["number"], c["via"], c["weight_kg"], c["weighed"],
             c["fraction"], c["time_ms"]) for c in found["cars"]] == [
        ("T-77", "PWX", 1001, "ORE-A", 80_150, True, 1.0, T0 + 60_000),
        ("T-77", "PWX", 1002, "BL-1", 79_000, False, 0.75, T0 + 60_000)]
    assert found["blends"] == [{"lot": "BL-1", "fraction": 0.75, "depth": 1}]
    assert found["kg"] == {"trucks": 30_100 + 29_800 + 31_000, "rail": 159_150}
    assert len(found["hash"]) == 64


def test_recall_list_hash_changes_with_a_new_trip(ore: Store) -> None:
    before = recall.recall_list(ore.conn, "ORE-A")["hash"]
    assert recall.recall_list(ore.conn, "ORE-A")["hash"] == before
    trip(ore, "o-a3", "ORE-A", "AB1003", T0 + 80_000, 30_000)
    assert recall.recall_list(ore.conn, "ORE-A")["hash"] != before


def test_recall_list_unknown_lot_is_not_found(db: Store) -> None:
    with pytest.raises(NotFound, match="no lot 'NOPE'"):
        recall.get_recall_list(db, "NOPE")


def test_failures_iron_ore_low_fe_and_wet_fail_good_passes() -> None:
    assert recall.failures("Iron Ore", {"fe_pm": 615, "moisture_pm": 95}) == [
        "fe_pm 615 below 620", "moisture_pm 95 above 90"]
    assert recall.failures("iron ore", {"fe_pm": 630, "moisture_pm": 80}) == []
    assert recall.failures("iron ore", {"moisture_pm": 80, "outlier": True}) == [
        "outlier result"]
    assert recall.failures("sand", {"moisture_pm": 999}) == []  # no limits: not judged
    # grain as the lab_limits rule judges it; a quarantine pest fails any commodity
    assert recall.failures("soybeans", {"moisture_pm": 131, "impurity_pm": 20}) == [
        "moisture_pm 131 above 130"]
    assert recall.failures("iron ore", {"fe_pm": 650, "findings": [
        ["Ambrosia artemisiifolia", 2, 1000], ["Avena sterilis", 0, 1000]]}) == [
        "quarantine pest Ambrosia artemisiifolia"]


def test_failures_limits_from_yaml_bad_file_says_what(tmp_path: Any) -> None:
    good = tmp_path / "limits.yaml"
    good.write_text("commodities:\n  iron ore:\n    fe_pm: {min: 650}\n")
    limits = recall.Limits.from_yaml(good)
    assert recall.failures("iron ore", {"fe_pm": 630}, limits) == ["fe_pm 630 below 650"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("commodities:\n  iron ore:\n    fe_pm: {min: lots}\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml"):
        recall.Limits.from_yaml(bad)


def _decisions(db: Store, kind: str) -> int:
    return int(db.conn.execute("SELECT count(*) FROM ledger_entries WHERE kind='decision' "
                               "AND subkind=?", (kind,)).fetchone()[0])


def test_recall_failing_sample_after_release_before_test_holds_and_alerts(ore: Store) -> None:
    with ore.transaction() as conn:
        made = recall.on_sample(conn, "ORE-A", {"fe_pm": 600, "moisture_pm": 70,
                                                "outlier": False},
                                device_id="lab-1", device_ts=T0 + 90_000,
                                received_ms=T0 + 91_000, seq=5)
    assert made is not None and len(made["trips"]) == 3
    kinds = {(h["lot"], h["kind"]) for h in hold_rows.list_holds(ore.conn, active=True)}
    assert {("ORE-A", "recall"), ("BL-1", "recall")} <= kinds
    alert = ore.conn.execute("SELECT severity, subject, detail_json FROM alerts WHERE "
                             "code='recall_required'").fetchall()
    assert len(alert) == 1 and alert[0][0] == "critical" and alert[0][1] == "ORE-A"
    assert made["hash"] in alert[0][2]
    assert _decisions(ore, "recall") == 1
    # a second failing sample: the recall is open, nothing doubles
    with ore.transaction() as conn:
        again = recall.on_sample(conn, "ORE-A", {"fe_pm": 590}, device_id="lab-1",
                                 device_ts=T0 + 95_000, received_ms=T0 + 96_000, seq=6)
    assert again is None and _decisions(ore, "recall") == 1


def test_recall_passing_sample_or_tested_lot_makes_no_recall(ore: Store) -> None:
    with ore.transaction() as conn:
        assert recall.on_sample(conn, "ORE-A", {"fe_pm": 640, "moisture_pm": 70},
                                device_id="lab-1", device_ts=1, received_ms=T0) is None
        # ORE-B was never released before its test: its failure is the lab's matter
        assert recall.on_sample(conn, "ORE-B", {"fe_pm": 500}, device_id="lab-1",
                                device_ts=1, received_ms=T0) is None
    assert _decisions(ore, "recall") == 0
    assert hold_rows.list_holds(ore.conn, active=True) == []


def test_blend_record_proportions_and_trace_both_ways(ore: Store) -> None:
    b = blends.get(ore, "BL-1")
    assert b["total_kg"] == 40_000 and b["origin"] == "blend"
    assert b["origins"] == ["AU", "BR"] and b["commodity"] == "iron ore"
    assert [(i["lot"], i["kg"], i["fraction"]) for i in b["inputs"]] == [
        ("ORE-A", 30_000, 0.75), ("ORE-B", 10_000, 0.25)]
    lot = lots.get_lot(ore.conn, "BL-1")
    assert lot is not None and lot["declared_kg"] == 40_000 and lot["origin_country"] == "AU"
    # a blend of the blend: the trace reaches every input at any depth
    blends.create(ore, "BL-2", [blends.BlendInput("BL-1", 20_000), blends.BlendInput(
        "ORE-C", 20_000)], reason="sweeten", actor="op", time_ms=T0 + 3000)
    assert blends.inputs_of(ore.conn, "BL-2") == [
        {"lot": "BL-1", "fraction": 0.5, "depth": 1},
        {"lot": "ORE-C", "fraction": 0.5, "depth": 1},
        {"lot": "ORE-A", "fraction": 0.375, "depth": 2},
        {"lot": "ORE-B", "fraction": 0.125, "depth": 2}]
    assert blends.blends_of(ore.conn, "ORE-A") == [
        {"lot": "BL-1", "fraction": 0.75, "depth": 1},
        {"lot": "BL-2", "fraction": 0.375, "depth": 2}]


def test_blend_bad_orders_refused_and_nothing_written(ore: Store) -> None:
    n = _decisions(ore, "blend")
    with pytest.raises(Conflict, match="exists already"):
        blends.create(ore, "ORE-C", [blends.BlendInput("ORE-A", 1), blends.BlendInput(
            "ORE-B", 1)], reason="x", actor="op")
    with pytest.raises(InvalidInput, match="not declared"):
        blends.create(ore, "BL-9", [blends.BlendInput("ORE-A", 1), blends.BlendInput(
            "GHOST", 1)], reason="x", actor="op")
    with pytest.raises(InvalidInput, match="2-50 input lots"):
        blends.create(ore, "BL-9", [blends.BlendInput("ORE-A", 1)], reason="x", actor="op")
    with pytest.raises(InvalidInput, match="listed twice"):
        blends.create(ore, "BL-9", [blends.BlendInput("ORE-A", 1), blends.BlendInput(
            "ORE-A", 2)], reason="x", actor="op")
    declare(ore, "WHEAT-1", commodity="wheat", kind="grain")
    with pytest.raises(InvalidInput, match="different commodity"):
        blends.create(ore, "BL-9", [blends.BlendInput("ORE-A", 1), blends.BlendInput(
            "WHEAT-1", 1)], reason="x", actor="op")
    assert _decisions(ore, "blend") == n
    assert blends.inputs_of(ore.conn, "BL-9") == []


def test_blend_input_hold_propagates_and_releases_with_the_input(ore: Store) -> None:
    from controller import holds
    holds.hold(ore, "ORE-B", reason="moisture check", actor="op", at_ms=T0 + 5000)
    held = hold_rows.active_hold(ore.conn, "BL-1", "blend_input")
    assert held is not None and "ORE-B" in held["reason"]
    holds.release(ore, "ORE-B", reason="checked", actor="admin", at_ms=T0 + 6000)
    assert hold_rows.active_hold(ore.conn, "BL-1", "blend_input") is None


def test_blend_of_a_held_input_is_held_at_creation(ore: Store) -> None:
    from controller import holds
    holds.hold(ore, "ORE-C", reason="phyto", actor="op", at_ms=T0 + 5000)
    blends.create(ore, "BL-3", [blends.BlendInput("ORE-C", 5), blends.BlendInput(
        "ORE-B", 5)], reason="x", actor="op", time_ms=T0 + 6000)
    assert hold_rows.active_hold(ore.conn, "BL-3", "blend_input") is not None


def test_blend_audit_clean_then_names_an_edited_fraction(ore: Store) -> None:
    report = AuditReport()
    audit_blends(ore.conn, report)
    assert report.mismatches == [] and report.count("blend_inputs").checked == 2
    with ore.transaction() as conn:
        conn.execute("UPDATE blend_inputs SET fraction=0.5 WHERE input_lot='ORE-A'")
        conn.execute("DELETE FROM blends WHERE blend_lot='BL-1'")
    report = AuditReport()
    audit_blends(ore.conn, report)
    found = {(m.table, m.key, m.problem) for m in report.mismatches}
    assert found == {("blend_inputs", "BL-1|ORE-A", "edited"), ("blends", "BL-1", "deleted")}


def test_recall_failing_ore_sample_through_the_ingest_names_the_lots_trips(db: Store) -> None:
    """The real path: a signed ``sample`` envelope, check_message, commit_batch with the
    rule runner; the sample taken while the lot unloaded, its result after the release."""
    from controller import registry
    from controller.ingest.verify import check_message
    from controller.ingest.writer import commit_batch
    from controller.supervision.runner import Runner
    from ctl_helpers import SITE, signed
    from protocols import labline

    lab = registry.provision(db, device_id="lab-1", site=SITE, kind="lab", driver={})
    declare(db, "ORE-X")
    t0 = 1796083200000  # 2026-12-01T00:00:00Z
    with db.transaction() as conn:
        lots.set_status(conn, "ORE-X", "unloading", reason="berth-1", actor="op",
                        time_ms=t0 + 1000)
        lots.set_status(conn, "ORE-X", "stored", reason="silos", actor="op",
                        time_ms=t0 + 600_000)
        lots.set_status(conn, "ORE-X", "released", reason="buyer's guarantee", actor="op",
                        time_ms=t0 + 700_000, released_before_test=True)
    trip(db, "o-x1", "ORE-X", "AB5001", t0 + 800_000, 30_000)
    trip(db, "o-x2", "ORE-X", "AB5002", t0 + 900_000, 31_000)
    keys = registry.secrets_by_device(db)

    def sample(seq: int, sid: str, fe_pm: int) -> Any:
        line = labline.build(sid, "2026-12-01T00:05:00Z", 70,  # type: ignore[no-untyped-call]
                             "wet", 0, 5, 0, "CAL-1", False, [])
        body: dict[str, Any] = {**labline.parse(line), "fe_pm": fe_pm}  # type: ignore[no-untyped-call]
        return check_message(signed(dict(lab), seq=seq, kind="sample", body=body,
                                    ts=t0 + 950_000, received_ms=t0 + 960_000),
                             site=SITE, keys=keys)

    commit_batch(db.conn, [sample(1, "S-OK", 640)], supervise=Runner())
    assert _decisions(db, "recall") == 0
    commit_batch(db.conn, [sample(2, "S-LOW", 598)], supervise=Runner())
    assert _decisions(db, "recall") == 1
    row = db.conn.execute("SELECT severity, detail_json FROM alerts WHERE "
                          "code='recall_required' AND subject='ORE-X'").fetchone()
    assert row is not None and row[0] == "critical"
    assert "fe_pm 598 below 620" in row[1]
    listed = recall.recall_list(db.conn, "ORE-X")
    assert [t["plate"] for t in listed["trips"]] == ["AB5001", "AB5002"]
    assert hold_rows.active_hold(db.conn, "ORE-X", "recall") is not None
    assert lots.get_lot(db.conn, "ORE-X")["status"] == "held"  # type: ignore[index]


def test_recall_sample_body_fe_pm_optional_and_bounded() -> None:
    from protocols import bodies, labline
    line = labline.build("S-1", "2026-12-01T00:05:00Z", 70, "wet", 0, 5, 0,  # type: ignore[no-untyped-call]
                         "CAL-1", False, [])
    body: dict[str, Any] = labline.parse(line)  # type: ignore[no-untyped-call]
    assert bodies.check("evt", "sample", body) is None
    assert bodies.check("evt", "sample", {**body, "fe_pm": 625}) is None
    for bad in (1001, -1, 62.5, "625", True):
        assert "fe_pm" in str(bodies.check("evt", "sample", {**body, "fe_pm": bad})), bad


def test_recall_list_without_rail_tables_lists_trips_but_a_broken_table_is_an_error(
        db: Store) -> None:
    declare(db, "ORE-Z")
    trip(db, "o-z1", "ORE-Z", "AB9001", T0 + 1, 30_000)
    listed = recall.recall_list(db.conn, "ORE-Z")  # whether or not the rail tables exist
    assert [t["plate"] for t in listed["trips"]] == ["AB9001"]
    cars(db, "T-Z", "open", None, [])  # the rail tables, made here if the schema has none
    with db.transaction() as conn:
        conn.execute("DROP TABLE IF EXISTS train_cars")
        conn.execute("CREATE TABLE train_cars (train_id TEXT, wagon TEXT)")  # not the schema
    import sqlite3
    with pytest.raises(sqlite3.OperationalError, match="no such column"):
        recall.recall_list(db.conn, "ORE-Z")


def test_recall_release_before_test_only_for_an_ore_lot_going_to_released(db: Store) -> None:
    declare(db, "WHEAT-9", commodity="wheat", kind="grain")
    for status in ("unloading", "stored"):
        lots.change_status(db, "WHEAT-9", status, reason="x", actor="op")
    with pytest.raises(InvalidInput, match="for an ore lot going to released"):
        lots.change_status(db, "WHEAT-9", "released", reason="x", actor="op",
                           released_before_test=True)
    row = lots.change_status(db, "WHEAT-9", "released", reason="lab ok", actor="op")
    assert row["status"] == "released" and row["released_before_test"] == 0


def test_recall_list_cars_through_the_real_rail_path(db: Store) -> None:
    """A train manifest (controller.trains), its passage through the real ingest (a signed
    ``passage`` envelope, commit_batch, the runner) and its release: the recall list's cars
    are the manifest's cars of the lot, with the weights the reader measured."""
    from controller import registry, trains
    from controller.ingest.verify import check_message
    from controller.ingest.writer import commit_batch
    from controller.supervision.runner import Runner
    from ctl_helpers import SITE, signed

    reader = registry.provision(db, device_id="rail-1", site=SITE, kind="rail_reader",
                                driver={"type": "rail", "source": "tcp:127.0.0.1:7200"})
    declare(db, "ORE-A")
    declare(db, "ORE-B", country="BR")
    blends.create(db, "BL-1", [blends.BlendInput("ORE-A", 3), blends.BlendInput(
        "ORE-B", 1)], reason="grade", actor="op", time_ms=T0)
    lots_on = ["ORE-A", "BL-1", "ORE-B"]
    trains.declare(db, {"train_id": "T-1", "reader": "rail-1", "direction": "out", "cars": [
        {"initial": "DLCX", "number": 100001 + i, "lot": lot, "destination": "dest-feed-mill",
         "declared_kg": 80_000} for i, lot in enumerate(lots_on)]}, actor="op", at_ms=T0)
    body = {"direction": "out", "started_ts": T0 + 60_000, "ended_ts": T0 + 120_000,
            "speed_dkmh": 150, "axles": 18, "train": "R7", "locos": [[1, "CR", 3001]],
            "cars": [[i + 2, "DLCX", 100001 + i, 0, 150, 4, 80_100 + i * 100]
                     for i in range(3)]}
    msg = signed(dict(reader), seq=1, kind="passage", body=body, ts=T0 + 120_000,
                 received_ms=T0 + 121_000)
    commit_batch(db.conn, [check_message(msg, site=SITE,
                                         keys=registry.secrets_by_device(db))],
                 supervise=Runner())
    trains.release(db, "T-1", actor="op", at_ms=T0 + 200_000)
    found = recall.recall_list(db.conn, "ORE-A")
    assert [(c["train"], c["initial"], c["number"], c["via"], c["fraction"], c["weight_kg"],
             c["weighed"], c["time_ms"], c["train_status"]) for c in found["cars"]] == [
        ("T-1", "DLCX", 100001, "ORE-A", 1.0, 80_100, True, T0 + 200_000, "released"),
        ("T-1", "DLCX", 100002, "BL-1", 0.75, 80_200, True, T0 + 200_000, "released")]
    assert found["kg"]["rail"] == 160_300


def test_recall_unreadable_list_still_holds_and_alerts_saying_so(ore: Store) -> None:
    with ore.transaction() as conn:
        conn.execute("DROP TABLE train_cars")
        conn.execute("CREATE TABLE train_cars (train_id TEXT, wagon TEXT)")  # not the schema
        made = recall.on_sample(conn, "ORE-A", {"fe_pm": 600}, device_id="lab-1",
                                device_ts=T0, received_ms=T0 + 1)
    assert made is not None and made["hash"] is None and "no such column" in made["list_error"]
    kinds = {(h["lot"], h["kind"]) for h in hold_rows.list_holds(ore.conn, active=True)}
    assert {("ORE-A", "recall"), ("BL-1", "recall")} <= kinds
    detail = ore.conn.execute("SELECT detail_json FROM alerts WHERE code='recall_required'"
                              ).fetchone()[0]
    assert "portwatch lot recall ORE-A" in detail
    assert recall.failures("iron ore", {"findings": [["x", "2", 1]]}) == []  # not a count


def test_recall_limits_from_the_environment_file_and_a_bad_one_falls_back(
        ore: Store, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "recall.yaml"
    path.write_text("commodities:\n  iron ore:\n    fe_pm: {min: 650}\n")
    monkeypatch.setenv(recall.LIMITS_ENV, str(path))
    assert recall.failures("iron ore", {"fe_pm": 640}, recall.current_limits()) == [
        "fe_pm 640 below 650"]
    with ore.transaction() as conn:  # 640 passes the default 620, fails the file's 650
        made = recall.on_sample(conn, "ORE-A", {"fe_pm": 640}, device_id="lab-1",
                                device_ts=T0, received_ms=T0 + 1)
    assert made is not None
    path.write_text("commodities: [not, a, mapping]\n")
    assert recall.current_limits() is recall.DEFAULT_LIMITS
    assert "recall.yaml" in caplog.text and "default recall limits" in caplog.text


def test_blend_input_hold_reaches_a_blend_of_the_blend_and_leaves_with_the_last_hold(
        ore: Store) -> None:
    from controller import holds
    blends.create(ore, "BL-2", [blends.BlendInput("BL-1", 2), blends.BlendInput(
        "ORE-C", 2)], reason="x", actor="op", time_ms=T0 + 3000)
    holds.hold(ore, "ORE-B", reason="moisture", actor="op", at_ms=T0 + 4000)
    holds.hold(ore, "ORE-C", reason="phyto", actor="op", at_ms=T0 + 4000)
    for lot in ("BL-1", "BL-2"):
        assert hold_rows.active_hold(ore.conn, lot, "blend_input") is not None, lot
    holds.release(ore, "ORE-B", reason="ok", actor="admin", at_ms=T0 + 5000)
    assert hold_rows.active_hold(ore.conn, "BL-1", "blend_input") is None
    assert hold_rows.active_hold(ore.conn, "BL-2", "blend_input") is not None  # ORE-C held
    holds.release(ore, "ORE-C", reason="ok", actor="admin", at_ms=T0 + 6000)
    assert hold_rows.active_hold(ore.conn, "BL-2", "blend_input") is None
    assert lots.get_lot(ore.conn, "BL-2")["status"] == "declared"  # type: ignore[index]
    from controller.audit import audit_store
    scripted = {"trips", "trains", "train_cars", "passage_cars"}  # the fixture's own rows
    assert [m for m in audit_store(ore.conn).mismatches if m.table not in scripted] == []
