"""The orders and trips API: an operator creates an order (times as ISO-8601 or ms), it is
listed and shown, refused with a clear 422 when it does not fit the site, cancelled; a trip's
detail (order, departure weighing, events, alerts) and its track after a departure and a
tracker's positions through the real writer and runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller import auth, registry, trips
from controller.api.app import create_app
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.site import current_site, set_site
from controller.site.geometry import centroid
from controller.storage import Store
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed, weighing_body

T0 = 1_764_072_000_000  # 2025-11-25T12:00:00Z
ORDER = {"lot": "LOT-7", "plate": "辽B12345", "tracker_id": "gps-1",
         "destination": "dest-feed-mill", "corridor": "c-feed-mill",
         "window_start": "2025-11-25T11:00:00Z", "window_end": T0 + 3 * 3_600_000,
         "expected_net_kg": 30000}


@pytest.fixture
def client(db_path: Path, db: Store) -> TestClient:
    set_site(None)
    registry.provision(db, device_id="gps-1", site=SITE, kind="gps", driver={})
    return TestClient(create_app(db_path=db_path, site=SITE))


def _bearer(db: Store, role: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + auth.create_token(db, name=role, role=role)}


def test_api_orders_create_list_show_and_cancel(client: TestClient, db: Store) -> None:
    op = _bearer(db, "operator")
    r = client.post("/api/v1/orders", json=ORDER, headers=op)
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["window_start_ms"] == T0 - 3_600_000 and order["status"] == "open"
    assert order["created_by"] == "token:operator (operator)"
    assert client.post("/api/v1/orders", json=ORDER, headers=_bearer(db, "auditor")
                       ).status_code == 403
    listed = client.get("/api/v1/orders?status=open", headers=op).json()
    assert [o["order_id"] for o in listed] == [order["order_id"]]
    assert client.get(f"/api/v1/orders/{order['order_id']}", headers=op).json() == order
    r = client.post(f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "no truck"},
                    headers=op)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/orders/{order['order_id']}/cancel", json={"reason": "x"},
                        headers=op)
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
    assert client.get("/api/v1/orders/o-none", headers=op).status_code == 404


@pytest.mark.parametrize(("change", "words"), [
    ({"destination": "silos"}, "not a destination zone"),
    ({"corridor": "c-grain-depot"}, "does not lead to dest-feed-mill"),
    ({"window_start": "2025-11-25 11:00"}, "give a zone"),
    ({"window_start": "yesterday"}, "not ISO-8601"),
    ({"window_end": "2025-11-25T10:00:00+00:00"}, "window_end must be after"),
    ({"tracker_id": "gps-9"}, "no device"),
])
def test_api_orders_that_do_not_fit_the_site_are_422_with_the_reason(
        client: TestClient, db: Store, change: dict[str, Any], words: str) -> None:
    r = client.post("/api/v1/orders", json={**ORDER, **change}, headers=_bearer(db, "operator"))
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert client.get("/api/v1/orders", headers=_bearer(db, "operator")).json() == []


def test_api_trip_detail_and_track_after_departure_and_arrival(client: TestClient,
                                                               db: Store) -> None:
    op = _bearer(db, "operator")
    order = client.post("/api/v1/orders", json=ORDER, headers=op).json()
    wb = registry.provision(db, device_id="wb-out", site=SITE, kind="weighbridge", driver={})
    gps = registry.get(db, "gps-1")
    keys = registry.secrets_by_device(db)
    runner = Runner()
    commit_batch(db.conn, [check_message(signed(wb, seq=3, body=weighing_body(45120)),
                                         site=SITE, keys=keys)], supervise=runner)
    with db.transaction() as conn:
        trips.depart(conn, order["order_id"], gate_device="wb-out", weighing_seq=3,
                     net_kg=30120, time_ms=T0, supervise=runner)
    start = current_site().corridors["c-feed-mill"].points[0]
    dest = centroid(current_site().zones["dest-feed-mill"])
    fixes = [[T0 + 60_000, start[0], start[1], 300, 0, 9, 8],
             [T0 + 40 * 60_000, dest[0], dest[1], 20, 0, 9, 8]]
    msg = signed(gps, seq=1, kind="positions", ts=fixes[-1][0], received_ms=fixes[-1][0],
                 body={"fixes": fixes, "ign": True, "ext_power": True, "tamper": False,
                       "src": "nmea"})
    commit_batch(db.conn, [check_message(msg, site=SITE, keys=keys)], supervise=runner)
    [trip] = client.get("/api/v1/trips?status=arrived", headers=op).json()
    assert trip["trip_id"] == order["order_id"] and trip["arrived_ts"] == T0 + 40 * 60_000
    detail = client.get(f"/api/v1/trips/{trip['trip_id']}", headers=op).json()
    assert detail["order"]["status"] == "arrived"
    assert detail["departure_weighing"]["net_kg"] == 30120
    # 39 minutes without a fix between the gate and the destination: a tracking gap, seen
    # from the fixes' device times (no tick ran here)
    assert [e["event"] for e in detail["events"]] == ["departed", "tracking_gap", "arrived"]
    assert [a["code"] for a in detail["alerts"]] == ["tracking_gap"]
    track = client.get(f"/api/v1/trips/{trip['trip_id']}/track", headers=op).json()
    assert [f["ts_ms"] for f in track] == [T0 + 60_000, T0 + 40 * 60_000]
    assert client.get("/api/v1/trips/o-none/track", headers=op).status_code == 404
