"""The rail yard through the real ingest (signed ``passage`` envelopes, commit_batch, the
rule runner) into a real SQLite store: a passage matched to its reader's open manifest,
missing / unexpected / unreadable cars, a changed order, an in-motion weight off the
R106 MPE, a held lot's car leaving (critical) and a release refused naming the held lot;
the projection rebuilt by the audit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from controller import holds, registry, trains
from controller.errors import Conflict, InvalidInput
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.storage import Store, ledger_log
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed
from protocols import s918

T0 = 1796083200000  # 2026-12-01T00:00:00Z
LOT_A, LOT_B = "LOT-R-0001", "LOT-R-0002"


@pytest.fixture
def reader(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="rail-1", site=SITE, kind="rail_reader",
                              driver={"type": "rail", "source": "tcp:127.0.0.1:7200"})


def _manifest(db: Store, n: int = 40, train_id: str = "T-1", declared_kg: int = 80_000
              ) -> dict[str, Any]:
    cars = [{"initial": "DLCX", "number": 100001 + i, "lot": LOT_A if i < n // 2 else LOT_B,
             "destination": "dest-feed-mill", "declared_kg": declared_kg} for i in range(n)]
    return trains.declare(db, {"train_id": train_id, "reader": "rail-1", "direction": "out",
                               "cars": cars}, actor="op", at_ms=T0)


def _passage(reader: Mapping[str, Any], seq: int, numbers: list[int], *,
             unreadable: int = 0, weights: Mapping[int, int] | None = None) -> Any:
    cars: list[list[Any]] = []
    for i, number in enumerate(numbers):
        cars.append([i + 2, "DLCX", number, i % 2, 150, 4, (weights or {}).get(number)])
    for j in range(unreadable):
        tag = s918.corrupt(s918.encode("DLCX", 999000 + j))
        cars.append([len(cars) + 2, None, None, None, None, None, None, tag])
    body = {"direction": "out", "started_ts": T0 + 60_000, "ended_ts": T0 + 120_000,
            "speed_dkmh": 150, "axles": 4 * len(cars) + 6, "train": "R7",
            "cars": cars, "locos": [[1, "CR", 3001]]}
    return signed(dict(reader), seq=seq, kind="passage", body=body, ts=T0 + 120_000,
                  received_ms=T0 + 121_000)


def _commit(db: Store, *msgs: Any) -> Any:
    keys = registry.secrets_by_device(db)
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                        supervise=Runner())


def _alerts(db: Store) -> list[tuple[str, str, str]]:
    return sorted((a["code"], a["subject"], a["severity"]) for a in db.db["alerts"].rows)


def _decisions(db: Store) -> list[dict[str, Any]]:
    out = []
    for _, data, _h in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == "train":
            out.append(e.body)
    return out


def test_rail_forty_cars_one_missing_one_extra_both_alerted(db: Store,
                                                            reader: dict[str, Any]) -> None:
    _manifest(db)
    numbers = [100001 + i for i in range(40) if i != 12]
    numbers.insert(20, 555555)
    _commit(db, _passage(reader, 1, numbers))
    assert _alerts(db) == [("rail_car_missing", "T-1/DLCX100013", "warning"),
                           ("rail_car_unexpected", "T-1/DLCX555555", "warning")]
    shown = trains.show(db, "T-1")
    assert shown["status"] == "passed" and shown["passage"]["cars"] == 40
    assert len(shown["passage"]["reads"]) == 41  # the locomotive and 40 cars
    assert [d["action"] for d in _decisions(db)] == ["manifest", "passage"]


def test_rail_clean_train_no_alert(db: Store, reader: dict[str, Any]) -> None:
    _manifest(db, n=5)
    _commit(db, _passage(reader, 1, [100001 + i for i in range(5)],
                         weights={100001: 80_250, 100002: 79_700}))
    assert _alerts(db) == []


def test_rail_unreadable_swapped_and_overweight_alerted(db: Store,
                                                        reader: dict[str, Any]) -> None:
    _manifest(db, n=6)
    # car 100004 unreadable (its tag corrupted: missing, maybe among the unreadable),
    # 100002 and 100003 swapped, 100005 400 kg over (class 0.5: MPE 400 kg at 80 t)
    # and 100006 401 kg over
    _commit(db, _passage(reader, 1, [100001, 100003, 100002, 100005, 100006], unreadable=1,
                         weights={100005: 80_400, 100006: 80_401}))
    codes = _alerts(db)
    assert ("rail_car_unreadable", "T-1/seq7", "warning") in codes
    assert ("rail_car_missing", "T-1/DLCX100004", "warning") in codes
    assert ("rail_order_differs", "T-1/order", "info") in codes
    assert ("rail_weight_differs", "T-1/DLCX100006", "warning") in codes
    assert not any(c[1] == "T-1/DLCX100005" for c in codes)
    missing = next(a for a in db.db["alerts"].rows if a["code"] == "rail_car_missing")
    assert '"unreadable_in_train": 1' in missing["detail_json"]


def test_rail_held_lot_departed_and_release_refused(db: Store, reader: dict[str, Any]) -> None:
    _manifest(db, n=4)
    holds.hold(db, LOT_B, reason="phytosanitary inspection pending", actor="officer",
               at_ms=T0 + 1000)
    with pytest.raises(Conflict, match=LOT_B):
        trains.release(db, "T-1", actor="op", at_ms=T0 + 2000)
    _commit(db, _passage(reader, 1, [100001 + i for i in range(4)]))
    assert _alerts(db) == [("held_lot_departed", f"T-1/{LOT_B}", "critical")]
    holds.release(db, LOT_B, reason="inspection passed", actor="officer", at_ms=T0 + 200_000)
    assert trains.release(db, "T-1", actor="op", at_ms=T0 + 300_000)["status"] == "released"
    with pytest.raises(Conflict, match="already released"):
        trains.release(db, "T-1", actor="op", at_ms=T0 + 300_001)


def test_rail_no_open_manifest_cars_unexpected(db: Store, reader: dict[str, Any]) -> None:
    _commit(db, _passage(reader, 1, [100001, 100002]))
    assert [c[0] for c in _alerts(db)] == ["rail_car_unexpected"] * 2
    rows = list(db.db["passages"].rows)
    assert len(rows) == 1 and rows[0]["cars"] == 2 and rows[0]["locos"] == 1


def test_rail_manifest_bad_input_refused(db: Store) -> None:
    good = {"train_id": "T-9", "reader": "rail-1", "direction": "out",
            "cars": [{"initial": "DLCX", "number": 1}]}
    for bad, needle in (({"train_id": ""}, "train_id"), ({"direction": "up"}, "direction"),
                        ({"cars": []}, "cars"), ({"cars": [{"initial": "D1", "number": 1}]},
                                                 "initial"),
                        ({"cars": [{"initial": "A", "number": 1}] * 2}, "twice"),
                        ({"cars": [{"initial": "A", "number": 1, "lot": "bad lot!"}]}, "car 0")):
        with pytest.raises(InvalidInput, match=needle):
            trains.declare(db, {**good, **bad}, actor="op")
    trains.declare(db, good, actor="op")
    with pytest.raises(Conflict):
        trains.declare(db, good, actor="op")


def test_rail_store_audits_clean_and_tampering_named(db: Store,
                                                     reader: dict[str, Any]) -> None:
    from controller import audit

    _manifest(db, n=4)
    _commit(db, _passage(reader, 1, [100001, 100002, 100004], unreadable=1))
    trains.release(db, "T-1", actor="op", at_ms=T0 + 300_000)
    report = audit.audit_store(db.conn)
    assert report.mismatches == [], report.mismatches
    assert report.count("passage_cars").checked == 5  # loco, 3 cars, 1 unreadable
    db.conn.execute("UPDATE passage_cars SET number=100003 WHERE seq=1 AND number=100004")
    db.conn.execute("UPDATE train_cars SET lot='LOT-X' WHERE idx=0")
    db.conn.execute("UPDATE trains SET status='open'")
    names = {(m.table, m.problem) for m in audit.audit_store(db.conn).mismatches}
    assert {("passage_cars", "edited"), ("train_cars", "edited"),
            ("trains", "edited")} <= names, names


def test_rail_lot_total_off_alerted(db: Store, reader: dict[str, Any]) -> None:
    # class 0.5 in service: 400 kg per 80 t car, 800 kg for a lot's two cars (160 t)
    _manifest(db, n=4)  # cars 1-2 LOT_A, 3-4 LOT_B, 80 t declared each
    _commit(db, _passage(reader, 1, [100001, 100002, 100003, 100004],
                         weights={100001: 80_390, 100002: 80_390, 100003: 79_000,
                                  100004: 80_000}))
    codes = _alerts(db)
    # LOT_B: car 3 is 1 t light (beyond its 400 kg), the lot 1 t light (beyond 800 kg)
    assert ("rail_weight_differs", "T-1/DLCX100003", "warning") in codes
    assert ("rail_lot_weight_differs", f"T-1/{LOT_B}", "warning") in codes
    # LOT_A: each car +390 kg within 400 kg, the lot +780 kg within 800 kg: no alert
    assert not any(c[1] in ("T-1/DLCX100001", "T-1/DLCX100002", f"T-1/{LOT_A}")
                   for c in codes), codes


def test_rail_audit_new_names_an_edited_manifest_car(db: Store) -> None:
    from controller import audit
    from controller.storage import audit_reads

    start = audit_reads.size(db.conn)
    _manifest(db, n=3)
    report, _ = audit.audit_new(db.conn, start, audit.Replay())
    assert report.mismatches == []
    db.conn.execute("UPDATE train_cars SET number=1 WHERE idx=2")
    report, _ = audit.audit_new(db.conn, start, audit.Replay())
    assert [(m.table, m.problem, m.key) for m in report.mismatches] == [
        ("train_cars", "edited", "T-1/2")]


def test_rail_same_train_sent_again_judged_once(db: Store, reader: dict[str, Any]) -> None:
    _manifest(db, n=3)
    _manifest(db, n=3, train_id="T-2")
    _commit(db, _passage(reader, 1, [100001, 100002]))
    _commit(db, _passage(reader, 2, [100001, 100002]))  # the reader re-sent it
    assert _alerts(db) == [("rail_car_missing", "T-1/DLCX100003", "warning")]
    assert trains.show(db, "T-2")["status"] == "open"  # not taken by the repeat
    assert len(list(db.db["passages"].rows)) == 2  # both stored: evidence
