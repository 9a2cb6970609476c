"""Orders and trips in a real store: an order checked against the demo site, a departure,
a tracker's positions through the ingest's writer and the supervision runner (a detour
alerted, the arrival closing the trip and the order), cancellation, ticks, and the audit
rebuilding orders, trips and trip events from the ledger's decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import audit, orders, registry, trips
from controller.errors import Conflict, InvalidInput
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.site import current_site, set_site
from controller.site.geometry import centroid, from_local
from controller.storage import Store, read_snapshot
from controller.storage import orders as order_rows
from controller.storage import trips as trip_rows
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed

T0 = 1_764_072_000_000
MIN = 60_000


@pytest.fixture(autouse=True)
def demo_site() -> Any:
    set_site(None)  # the bundled demo site
    yield
    set_site(None)


def _order(db: Store, **over: Any) -> dict[str, Any]:
    registry.provision(db, device_id="gps-1", site=SITE, kind="gps", driver={})
    fields: dict[str, Any] = {
        "lot": "LOT-7", "plate": "辽B12345", "tracker_id": "gps-1",
        "destination": "dest-feed-mill", "corridor": "c-feed-mill",
        "window_start_ms": T0 - 60 * MIN, "window_end_ms": T0 + 180 * MIN,
        "expected_net_kg": 30000, **over}
    return orders.create(db, orders.NewOrder(**fields), actor="op-1", time_ms=T0 - 30 * MIN)


def _route(n: int) -> list[tuple[int, int]]:
    """n points spread along the demo corridor to the feed mill."""
    pts = current_site().corridors["c-feed-mill"].points
    out = []
    for i in range(n):
        x = i * (len(pts) - 1) / n
        a, b = pts[int(x)], pts[int(x) + 1]
        t = x - int(x)
        out.append((round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t)))
    return out


def _positions(dev: dict[str, Any], seq: int, fixes: list[list[int]]) -> Received:
    return signed(dev, seq=seq, kind="positions", ts=fixes[-1][0], received_ms=fixes[-1][0],
                  body={"fixes": fixes, "ign": True, "ext_power": True, "tamper": False,
                        "src": "nmea"})


def _commit(db: Store, runner: Runner, *msgs: Received) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                 supervise=runner)


def _depart(db: Store, order_id: str, runner: Runner) -> None:
    with db.transaction() as conn:
        trips.depart(conn, order_id, gate_device="wb-out", weighing_seq=7, net_kg=30120,
                     time_ms=T0, supervise=runner)


def test_trips_a_detour_is_alerted_and_the_arrival_closes_trip_and_order(db: Store) -> None:
    order = _order(db)
    assert order["status"] == "open"
    assert order_rows.open_order_for_plate(db.conn, "辽B12345", T0)["order_id"] == order["order_id"]
    runner = Runner()
    _depart(db, order["order_id"], runner)
    assert order_rows.open_order_for_plate(db.conn, "辽B12345", T0) is None
    dev = registry.get(db, "gps-1")
    route = _route(40)
    fixes = [[T0 + (i + 1) * MIN, lat, lon, 500, 0, 9, 8] for i, (lat, lon) in enumerate(route)]
    for i in range(12, 16):  # 1.5 km east of the corridor for four minutes
        lat, lon = from_local((fixes[i][1], fixes[i][2]), 1500, 0)
        fixes[i][1:3] = [lat, lon]
    dest = centroid(current_site().zones["dest-feed-mill"])
    fixes.append([T0 + 45 * MIN, dest[0], dest[1], 50, 0, 9, 8])
    _commit(db, runner, *(_positions(dev, s, fixes[i:i + 10])
                          for s, i in enumerate(range(0, len(fixes), 10), 1)))
    trip = trip_rows.get_trip(db.conn, order["order_id"])
    assert trip is not None and trip["status"] == "arrived"
    assert trip["arrived_ts"] == T0 + 45 * MIN and trip["gate_device"] == "wb-out"
    assert order_rows.get_order(db.conn, order["order_id"])["status"] == "arrived"
    evs = [e["event"] for e in trip_rows.events(db.conn, order["order_id"])]
    assert evs == ["departed", "corridor_deviation", "corridor_rejoined", "arrived"]
    codes = [(a["code"], a["severity"]) for a in trip_rows.trip_alerts(db.conn, order["order_id"])]
    assert codes == [("corridor_deviation", "critical")]
    with read_snapshot(db.path) as conn:
        report = audit.audit_store(conn)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.tables["trip_events"].checked == 4 and report.tables["orders"].checked == 1


def test_trips_the_audit_names_an_edited_order_and_a_deleted_trip_event(db: Store) -> None:
    order = _order(db)
    _depart(db, order["order_id"], Runner())
    db.conn.execute("UPDATE orders SET expected_net_kg=1 WHERE order_id=?", (order["order_id"],))
    db.conn.execute("DELETE FROM trip_events")
    with read_snapshot(db.path) as conn:
        found = {(m.table, m.problem) for m in audit.audit_store(conn).mismatches}
    assert found == {("orders", "edited"), ("trip_events", "deleted")}


def test_trips_ticks_raise_a_tracking_gap_and_overdue_while_no_fix_arrives(db: Store) -> None:
    order = _order(db, window_end_ms=T0 + 20 * MIN)
    runner = Runner()
    _depart(db, order["order_id"], runner)
    assert trips.tick(db.conn, T0 + 4 * MIN, runner) == 1
    assert trip_rows.trip_alerts(db.conn, order["order_id"]) == []
    trips.tick(db.conn, T0 + 21 * MIN, runner)
    codes = sorted(a["code"] for a in trip_rows.trip_alerts(db.conn, order["order_id"]))
    assert codes == ["tracking_gap", "trip_overdue"]


def test_trips_cancel_ends_the_trip_and_a_cancelled_order_cannot_depart(db: Store) -> None:
    order = _order(db)
    runner = Runner()
    _depart(db, order["order_id"], runner)
    row = orders.cancel(db, order["order_id"], reason="truck broke down", actor="op-1",
                        time_ms=T0 + 5 * MIN, supervise=runner)
    assert row["status"] == "cancelled" and row["cancel_reason"] == "truck broke down"
    assert trip_rows.get_trip(db.conn, order["order_id"])["status"] == "cancelled"
    assert trips.tick(db.conn, T0 + 60 * MIN, runner) == 0
    with pytest.raises(Conflict, match="not open"):
        _depart(db, order["order_id"], runner)
    with pytest.raises(Conflict, match="cancelled"):
        orders.cancel(db, order["order_id"], reason="again", actor="op-1")


def test_trips_projection_rows_have_the_stored_tables_columns(db: Store) -> None:
    from controller.projections import orders as fold
    assert fold.ORDER_COLUMNS == order_rows.ORDER_COLUMNS
    assert fold.TRIP_COLUMNS == trip_rows.TRIP_COLUMNS
    assert fold.EVENT_COLUMNS == trip_rows.EVENT_COLUMNS
    for table, cols in (("orders", fold.ORDER_COLUMNS), ("trips", fold.TRIP_COLUMNS),
                        ("trip_events", fold.EVENT_COLUMNS)):
        assert set(db.db[table].columns_dict) == set(cols), table


@pytest.mark.parametrize(("field", "value", "message"), [
    ("destination", "silos", "not a destination zone"),
    ("corridor", "c-grain-depot", "does not lead to dest-feed-mill"),
    ("tracker_id", "nobody", "tracker_id"),
    ("window_end_ms", T0 - 120 * MIN, "window_end must be after"),
    ("plate", " ", "plate must be"),
    ("lot", "LOT 7", "as lot holds name lots"),
])
def test_trips_order_refused_with_a_clear_reason(db: Store, field: str, value: Any,
                                                 message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        _order(db, **{field: value})
    assert order_rows.all_orders(db.conn) == []


def test_trips_order_tracker_must_be_a_gps_device(db: Store, device: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="not a GPS tracker"):
        _order(db, tracker_id=device["device_id"])


def test_trips_tick_once_on_the_store_raises_a_gap_for_a_quiet_tracker(db: Store) -> None:
    from controller.storage import now_ms
    from controller.trip_ticks import tick_once
    order = _order(db, window_start_ms=now_ms() - 60 * MIN, window_end_ms=now_ms() + 60 * MIN)
    runner = Runner()
    with db.transaction() as conn:
        trips.depart(conn, order["order_id"], gate_device="wb-out", weighing_seq=7,
                     net_kg=30120, time_ms=now_ms() - 6 * MIN, supervise=runner)
    assert tick_once(db.path, runner) == 1
    [gap] = trip_rows.trip_alerts(db.conn, order["order_id"])
    assert gap["code"] == "tracking_gap" and gap["rule"] == "trip_gap"


def test_trips_audit_new_names_a_changed_order_and_a_deleted_event(db: Store) -> None:
    from controller.storage import ledger_log
    start = ledger_log.size(db.conn)
    order = _order(db)
    _depart(db, order["order_id"], Runner())
    with read_snapshot(db.path) as conn:
        clean, _ = audit.audit_new(conn, start, audit.Replay.load(conn))
    assert clean.clean, [m.as_json() for m in clean.mismatches]
    db.conn.execute("UPDATE orders SET plate='X1' WHERE order_id=?", (order["order_id"],))
    db.conn.execute("DELETE FROM trip_events")
    with read_snapshot(db.path) as conn:
        report, _ = audit.audit_new(conn, start, audit.Replay.load(conn))
    assert {(m.table, m.problem) for m in report.mismatches} == {("orders", "edited"),
                                                                ("trip_events", "deleted")}


def test_trips_a_tracker_leaving_on_a_new_order_ends_its_trip_in_transit(db: Store) -> None:
    first = _order(db)
    second = orders.create(db, orders.NewOrder(
        lot="LOT-8", plate="辽B99999", tracker_id="gps-1", destination="dest-feed-mill",
        corridor="c-feed-mill", window_start_ms=T0 - 60 * MIN, window_end_ms=T0 + 180 * MIN,
        expected_net_kg=28000), actor="op-1", time_ms=T0 - 20 * MIN)
    runner = Runner()
    _depart(db, first["order_id"], runner)
    with db.transaction() as conn:
        trips.depart(conn, second["order_id"], gate_device="wb-out", weighing_seq=9,
                     net_kg=28010, time_ms=T0 + 30 * MIN, supervise=runner)
    old = trip_rows.get_trip(db.conn, first["order_id"])
    assert old["status"] == "cancelled" and second["order_id"] in old["end_reason"]
    [alert] = trip_rows.trip_alerts(db.conn, first["order_id"])
    assert alert["code"] == "tracker_reused"
    assert [t["trip_id"] for t in trip_rows.open_trips(db.conn)] == [second["order_id"]]
    with read_snapshot(db.path) as conn:
        assert audit.audit_store(conn).clean


def test_trips_cancel_clears_the_trips_open_overdue_and_gap_alerts(db: Store) -> None:
    order = _order(db, window_end_ms=T0 + 20 * MIN)
    runner = Runner()
    _depart(db, order["order_id"], runner)
    trips.tick(db.conn, T0 + 21 * MIN, runner)
    assert all(a["cleared_ms"] is None for a in trip_rows.trip_alerts(db.conn, order["order_id"]))
    orders.cancel(db, order["order_id"], reason="called back", actor="op-1",
                  time_ms=T0 + 22 * MIN, supervise=runner)
    found = trip_rows.trip_alerts(db.conn, order["order_id"])
    assert sorted(a["code"] for a in found) == ["tracking_gap", "trip_overdue"]
    assert all(a["cleared_ms"] == T0 + 22 * MIN for a in found)


def test_trips_alerts_raised_by_ticks_and_cleared_by_a_cancel_audit_clean(db: Store) -> None:
    order = _order(db, window_end_ms=T0 + 20 * MIN)
    runner = Runner()
    _depart(db, order["order_id"], runner)
    trips.tick(db.conn, T0 + 21 * MIN, runner)
    orders.cancel(db, order["order_id"], reason="called back", actor="op-1",
                  time_ms=T0 + 22 * MIN, supervise=runner)
    with read_snapshot(db.path) as conn:
        report = audit.audit_store(conn)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.tables["alerts"].checked == 2 and report.tables["trips"].checked == 1


def test_trips_a_blind_area_backlog_with_a_detour_is_alerted_once_when_it_lands(
        db: Store) -> None:
    """A JT/T 808 blind-area batch: sent after the live reports that followed it, with a
    later seq and older device times."""
    order = _order(db)
    runner = Runner()
    _depart(db, order["order_id"], runner)
    dev = registry.get(db, "gps-1")
    route = _route(40)
    fixes = [[T0 + (i + 1) * MIN, lat, lon, 500, 0, 9, 8] for i, (lat, lon) in enumerate(route)]
    for i in range(8, 12):
        fixes[i][1:3] = list(from_local((fixes[i][1], fixes[i][2]), 0, 1200))
    _commit(db, runner, _positions(dev, 1, fixes[0:6]))
    _commit(db, runner, _positions(dev, 2, fixes[18:24]))   # live, after the blind area
    [gap] = trip_rows.trip_alerts(db.conn, order["order_id"])  # 12 minutes unheard of
    assert gap["code"] == "tracking_gap" and gap["cleared_ms"] is None
    _commit(db, runner, _positions(dev, 3, fixes[6:18]))    # the blind-area batch lands
    _commit(db, runner, _positions(dev, 4, fixes[24:30]))
    # the live reports after the blind area left a 12-minute hole: a tracking gap, raised
    # from the fixes' device times and cleared when the backlog filled it
    found = {a["code"]: a for a in trip_rows.trip_alerts(db.conn, order["order_id"])}
    assert sorted(found) == ["corridor_deviation", "tracking_gap"]
    assert all(a["cleared_ms"] is not None for a in found.values())
    evs = [(e["event"], json.loads(e["detail_json"])["ts"])
           for e in trip_rows.events(db.conn, order["order_id"])]
    assert [e for e in evs[1:] if e[0].startswith("corridor")] == [
        ("corridor_deviation", T0 + 9 * MIN), ("corridor_rejoined", T0 + 12 * MIN)]
    assert {"tracking_gap", "tracking_gap_filled"} <= {e[0] for e in evs}


def test_trips_a_departure_on_a_corridor_the_site_no_longer_has_is_unsupervised_critical(
        db: Store) -> None:
    from dataclasses import replace
    order = _order(db)
    site = current_site()
    changed = replace(site, corridors={k: v for k, v in site.corridors.items()
                                       if k != "c-feed-mill"})
    with db.transaction() as conn:
        trips.depart(conn, order["order_id"], gate_device="wb-out", weighing_seq=7,
                     net_kg=30120, time_ms=T0, supervise=Runner(), site=changed)
    assert trip_rows.get_trip(db.conn, order["order_id"])["status"] == "in_transit"
    [alert] = trip_rows.trip_alerts(db.conn, order["order_id"])
    assert (alert["code"], alert["severity"]) == ("trip_unsupervised", "critical")
