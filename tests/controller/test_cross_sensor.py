"""The cross-sensor check: a weighing's plate placed on the weighbridge by its truck's
tracker. The pure core against the demo site's weighbridge zones, and the shell on a real
SQLite store with real signed weighings and positions, the demo site description, orders
as the trips projection stores them; positions arriving after the weighing, the deadline
by the tracker's own fixes and by the controller's clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import registry
from controller.cross_sensor import CODE, CrossSensor
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.ledger import entries
from controller.site import current_site
from controller.storage import Store, ledger_log
from controller.storage import cross_sensor as pending_rows
from controller.storage import orders as order_rows
from controller.supervision import presence as core
from ctl_helpers import SITE, signed, weighing_body

T0 = 1764072000000
ON_WB_OUT = (38_933_725, 121_647_515)    # the out-gate deck's middle
NEAR_WB_OUT = (38_933_900, 121_647_515)  # ~20 m north of its edge: GPS error
IN_PARKING = (38_935_700, 121_645_000)   # the truck park, ~300 m away
WB_OUT = current_site().zones["wb-out"]


def fx(ts: int, where: tuple[int, int]) -> tuple[int, int, int]:
    return (ts, where[0], where[1])


# -- the pure core ------------------------------------------------------------------------

def test_presence_a_fix_on_or_near_the_deck_within_the_window_is_present() -> None:
    assert core.presence([fx(T0 - 60_000, ON_WB_OUT)], WB_OUT, T0, 120_000) == core.PRESENT
    assert core.presence([fx(T0 + 90_000, NEAR_WB_OUT)], WB_OUT, T0, 120_000) == core.PRESENT
    assert core.distance_to_zone_m(WB_OUT, *ON_WB_OUT) == 0.0
    assert 15 < core.distance_to_zone_m(WB_OUT, *NEAR_WB_OUT) < 25


def test_presence_fixes_around_the_weighing_all_far_away_is_absent() -> None:
    fixes = [fx(T0 - 100_000 + i * 10_000, IN_PARKING) for i in range(20)]
    assert core.presence(fixes, WB_OUT, T0, 120_000) == core.ABSENT
    # on the deck, but 5 min earlier: outside the window, so absent too
    assert core.presence([fx(T0 - 300_000, ON_WB_OUT), *fixes], WB_OUT, T0,
                         120_000) == core.ABSENT


def test_presence_nothing_around_the_weighing_or_too_sparse_to_tell_is_unknown() -> None:
    assert core.presence([], WB_OUT, T0, 120_000) == core.UNKNOWN
    # only before: the truck may have driven on after its last fix
    assert core.presence([fx(T0 - 10_000, IN_PARKING)], WB_OUT, T0, 120_000) == core.UNKNOWN
    # 300 m away 110 s before and after: at 30 km/h it could have been there between
    assert core.presence([fx(T0 - 110_000, IN_PARKING), fx(T0 + 110_000, IN_PARKING)],
                         WB_OUT, T0, 120_000) == core.UNKNOWN


# -- the shell on a store -------------------------------------------------------------------

@pytest.fixture
def site_db(db: Store) -> dict[str, Any]:
    devs = {"wb-out": registry.provision(db, device_id="wb-out", site=SITE, kind="weighbridge",
                                         driver={}),
            "gps-7": registry.provision(db, device_id="gps-7", site=SITE, kind="gps",
                                        driver={})}
    with db.transaction() as conn:
        order_rows.put_order(conn, {
            "order_id": "TO-1", "lot": "LOT-1", "plate": "辽B12345", "tracker_id": "gps-7",
            "destination": "dest-feed-mill", "corridor": "to-feed-mill",
            "window_start_ms": T0 - 3_600_000, "window_end_ms": T0 + 3_600_000,
            "expected_net_kg": 30240, "status": "open", "created_ms": T0 - 7_200_000,
            "created_by": "test", "updated_ms": T0 - 7_200_000, "cancel_reason": None})
    return devs


def _weighing(dev: dict[str, Any], seq: int = 1, plate: str = "辽B12345") -> Received:
    return signed(dev, seq=seq, body=weighing_body(45240, plate), ts=T0,
                  received_ms=T0 + 500)


def _positions(dev: dict[str, Any], seq: int, fixes: list[tuple[int, int, int]],
               received_ms: int) -> Received:
    body = {"fixes": [[t, la, lo, 50, 90, 9, 8] for t, la, lo in fixes], "ign": True,
            "ext_power": True, "tamper": False, "src": "nmea"}
    return signed(dev, seq=seq, kind="positions", body=body, ts=fixes[-1][0],
                  received_ms=received_ms)


def _commit(db: Store, cs: CrossSensor, *msgs: Received) -> list[Any]:
    keys = registry.secrets_by_device(db)
    found: list[Any] = []

    def supervise(conn: Any, facts: Any) -> list[Any]:
        made = cs.supervise(conn, facts)
        found.extend(made)
        return made

    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                 supervise=supervise)
    return found


def _verdicts(db: Store) -> list[dict[str, Any]]:
    out = []
    for _, data, _h in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == "presence_check":
            out.append(e.body)
    return out


def _alerts(db: Store) -> list[dict[str, Any]]:
    return list(db.db.query("SELECT * FROM alerts WHERE code=?", [CODE]))


def test_cross_sensor_tracker_on_the_deck_in_the_same_batch_is_present_without_alert(
        db: Store, site_db: dict[str, Any]) -> None:
    cs = CrossSensor()
    track = [fx(T0 - 20_000 + i * 5000, ON_WB_OUT) for i in range(8)]
    assert _commit(db, cs, _weighing(site_db["wb-out"]),
                   _positions(site_db["gps-7"], 1, track, T0 + 600)) == []
    [v] = _verdicts(db)
    assert (v["verdict"], v["device_id"], v["seq"], v["tracker_id"], v["order_id"],
            v["zone"]) == ("present", "wb-out", 1, "gps-7", "TO-1", "wb-out")
    assert _alerts(db) == [] and pending_rows.pending(db.conn) == {}


def test_cross_sensor_positions_after_the_weighing_placing_it_elsewhere_alert_absent(
        db: Store, site_db: dict[str, Any]) -> None:
    cs = CrossSensor()
    assert _commit(db, cs, _weighing(site_db["wb-out"])) == []
    assert list(pending_rows.pending(db.conn)) == ["gps-7"]  # waits for the tracker
    early = [fx(T0 - 100_000 + i * 10_000, IN_PARKING) for i in range(12)]  # up to T0+10 s
    assert _commit(db, cs, _positions(site_db["gps-7"], 1, early, T0 + 20_000)) == []
    assert _alerts(db) == [] and _verdicts(db) == []  # before the deadline: still waiting
    late = [fx(T0 + 20_000 + i * 10_000, IN_PARKING) for i in range(17)]  # to T0+180 s
    [alert] = _commit(db, cs, _positions(site_db["gps-7"], 2, late, T0 + 190_000))
    assert (alert.code, alert.severity, alert.device_id, alert.subject) == (
        CODE, "critical", "wb-out", "seq 1")
    [row] = _alerts(db)
    detail = json.loads(row["detail_json"])
    assert detail["verdict"] == "absent" and detail["nearest_zones"] == ["truck-park"]
    assert detail["nearest_m"] > 250 and "another truck" in detail["what"]
    assert [v["verdict"] for v in _verdicts(db)] == ["absent"]
    assert pending_rows.pending(db.conn) == {}


def test_cross_sensor_late_positions_on_the_deck_settle_it_present(
        db: Store, site_db: dict[str, Any]) -> None:
    cs = CrossSensor()
    _commit(db, cs, _weighing(site_db["wb-out"]))
    backlog = [fx(T0 - 30_000 + i * 5000, ON_WB_OUT) for i in range(10)]
    assert _commit(db, cs, _positions(site_db["gps-7"], 1, backlog, T0 + 400_000)) == []
    assert [v["verdict"] for v in _verdicts(db)] == ["present"] and _alerts(db) == []


def test_cross_sensor_silent_tracker_alerts_unknown_at_the_wall_clock_deadline(
        db: Store, site_db: dict[str, Any]) -> None:
    cs = CrossSensor(timeout_ms=600_000)
    _commit(db, cs, _weighing(site_db["wb-out"]))
    assert cs.tick(db.conn, T0 + 500 + 599_000) == []  # not yet
    [alert] = cs.tick(db.conn, T0 + 500 + 600_000)
    assert alert.detail["verdict"] == "unknown" and alert.detail["fixes_in_window"] == 0
    assert "sent too little" in alert.detail["what"]
    assert cs.tick(db.conn, T0 + 10**7) == []  # decided once
    assert [v["verdict"] for v in _verdicts(db)] == ["unknown"]


def test_cross_sensor_skips_weighings_it_cannot_check(db: Store,
                                                      site_db: dict[str, Any]) -> None:
    cs = CrossSensor()
    other = registry.provision(db, device_id="wb-9", site=SITE, kind="weighbridge", driver={})
    _commit(db, cs, _weighing(other),                       # not in the site description
            _weighing(site_db["wb-out"], 2, plate="辽B99999"))  # no order for this plate
    assert pending_rows.pending(db.conn) == {} and _verdicts(db) == []


def test_cross_sensor_failure_is_counted_and_the_batch_still_commits(
        db: Store, site_db: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the check is injected (the pure core raising): the rest is real."""
    cs = CrossSensor()

    def broken(*_a: Any, **_k: Any) -> str:
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(core, "presence", broken)
    assert _commit(db, cs, _weighing(site_db["wb-out"])) == []
    assert cs.failures == 1
    assert db.db["weighings"].count == 1  # the custody event is stored all the same
    assert pending_rows.pending(db.conn) == {}  # the savepoint undid the half-made check


def test_cross_sensor_site_that_does_not_load_turns_the_check_off(
        db: Store, site_db: dict[str, Any]) -> None:
    from controller.site import SiteError

    def bad() -> Any:
        raise SiteError("zones: missing", 3, "site.yaml")

    cs = CrossSensor(site=bad)
    assert _commit(db, cs, _weighing(site_db["wb-out"])) == []
    assert db.db["weighings"].count == 1 and cs.failures == 0
    assert pending_rows.pending(db.conn) == {}
