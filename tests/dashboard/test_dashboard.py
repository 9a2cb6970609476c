"""The operators' dashboard in a real headless chromium against the real API over a real
store: every page loads clean, an operator acknowledges an alert, a truck moves on the map
as its fixes are stored, roles see and may do only what they should, the event stream
ends when its client leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from controller.api.routers import events
from tools import dashboard_demo
from tools.dashboard_demo import READY, TRUCKS, Demo, along, log_in
from tools.procs import wait_until


def _hdr(demo: Demo, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo.tokens[role]}"}


def test_every_page_loads_with_no_console_error(page: Any, base: str, demo: Demo) -> None:
    log_in(page, base, demo.tokens["operator"])
    trip = demo.trips[TRUCKS[0][0]]
    for hash_ in ("fleet", "device/wb-out", "alerts", "alerts/acknowledged", "map/site",
                  "map/port", f"trip/{trip}", "lots", f"lot/{dashboard_demo.LOT}", "gate"):
        page.goto(f"{base}/ui/#/{hash_}")
        ready = READY.get(hash_.split("/")[0], "[data-testid=lots-table]")
        expect(page.locator(ready).first).to_be_visible()
    # the problems stand out with a sign and words, not colour alone
    page.goto(f"{base}/ui/#/fleet")
    row = page.locator("[data-device=wb-spare]")
    expect(row).to_contain_text("✖ offline")
    expect(row).to_contain_text("calibration expired")
    page.get_by_test_id("lang").click()
    expect(page.get_by_test_id("nav-fleet")).to_have_text("设备")
    page.get_by_test_id("wall").click()
    expect(page.locator("body")).to_have_class("wall")
    assert page.errors == []


def test_an_alert_acknowledged_in_the_page_is_acknowledged_in_the_api(
        page: Any, base: str, demo: Demo) -> None:
    log_in(page, base, demo.tokens["operator"])
    page.goto(f"{base}/ui/#/alerts/open")
    row = page.locator("[data-testid=alert-row]", has_text="overload")
    row.get_by_test_id("comment").fill("driver called, load being split")
    row.get_by_test_id("ack").click()
    expect(row).to_have_count(0)  # it left the open tab
    alerts = httpx.get(f"{base}/api/v1/alerts?state=acknowledged",
                       headers=_hdr(demo, "auditor")).json()
    [acked] = [a for a in alerts if a["code"] == "overload"]
    assert acked["ack_comment"] == "driver called, load being split"
    assert acked["acked_by"] == "token:demo-operator (operator)"
    assert page.errors == []


def test_a_truck_moves_on_the_map_as_its_fixes_are_stored(page: Any, base: str,
                                                          demo: Demo) -> None:
    plate, tracker, corridor, far, _off = TRUCKS[1]
    trip = demo.trips[plate]
    log_in(page, base, demo.tokens["auditor"])
    page.goto(f"{base}/ui/#/map/site")
    marker = page.locator(f"[data-testid=truck][data-trip={trip}]")
    expect(marker).to_have_count(1)
    before = marker.get_attribute("data-lat")
    lat, lon = along(corridor, far + 0.2)
    demo.feeder.fixes(tracker, [along(corridor, far + 0.1), (lat, lon)])
    # no reload: the event stream tells the page, which draws the truck where it is now
    expect(marker).to_have_attribute("data-lat", str(lat), timeout=15_000)
    assert marker.get_attribute("data-lat") != before
    assert marker.get_attribute("data-lon") == str(lon)
    # the truck off its corridor is marked with a sign, not colour alone
    expect(page.locator(f"[data-trip={demo.trips[TRUCKS[0][0]]}]")).to_contain_text("⚠")
    assert page.errors == []


def test_new_alert_shows_a_banner_without_a_reload(page: Any, base: str, demo: Demo) -> None:
    log_in(page, base, demo.tokens["operator"])
    expect(page.get_by_test_id("live")).to_contain_text("live")
    banner = page.get_by_test_id("alert-banner")
    expect(banner).to_be_hidden()
    demo.feeder.send("wb-in", "alarm", {"alarm": "tamper", "state": "raised", "detail": {}})
    expect(banner).to_be_visible(timeout=15_000)
    expect(banner).to_contain_text("tamper")


def test_an_operator_sees_no_admin_action_and_the_api_refuses_it(
        page: Any, base: str, demo: Demo) -> None:
    log_in(page, base, demo.tokens["operator"])
    page.goto(f"{base}/ui/#/device/wb-in")
    expect(page.get_by_test_id("chart-heap")).to_be_visible()
    expect(page.get_by_test_id("decommission")).to_have_count(0)
    r = httpx.post(f"{base}/api/v1/devices/wb-in/decommission", json={"reason": "try"},
                   headers=_hdr(demo, "operator"))
    assert r.status_code == 403
    # an admin sees the action, and it works
    page.get_by_test_id("logout").click()
    log_in(page, base, demo.tokens["admin"])
    page.goto(f"{base}/ui/#/device/wb-in")
    page.get_by_test_id("decommission-reason").fill("replaced by wb-in2")
    page.get_by_test_id("decommission").click()
    expect(page.get_by_test_id("decommission")).to_have_count(0)
    dev = httpx.get(f"{base}/api/v1/devices/wb-in", headers=_hdr(demo, "auditor")).json()
    assert dev["status"] == "decommissioned"


def test_an_auditor_cannot_acknowledge(page: Any, base: str, demo: Demo) -> None:
    log_in(page, base, demo.tokens["auditor"])
    page.goto(f"{base}/ui/#/alerts/open")
    expect(page.locator("[data-testid=alert-row]").first).to_be_visible()
    expect(page.get_by_test_id("ack")).to_have_count(0)
    expect(page.get_by_test_id("resolve")).to_have_count(0)
    alert = httpx.get(f"{base}/api/v1/alerts?state=open", headers=_hdr(demo, "auditor")).json()[0]
    r = httpx.post(f"{base}/api/v1/alerts/{alert['id']}/ack", json={"comment": "me"},
                   headers=_hdr(demo, "auditor"))
    assert r.status_code == 403


def test_event_stream_needs_a_live_token_and_ends_when_its_client_leaves(
        page: Any, base: str, demo: Demo) -> None:
    assert httpx.get(f"{base}/api/v1/events?max_s=0").status_code == 401
    assert httpx.get(f"{base}/api/v1/events?max_s=0",
                     cookies={"pw_session": "pwt_bogus"}).status_code == 401
    # the cookie opens the stream only: another route still wants the header
    assert httpx.get(f"{base}/api/v1/devices",
                     cookies={"pw_session": demo.tokens["admin"]}).status_code == 401
    log_in(page, base, demo.tokens["operator"])
    expect(page.get_by_test_id("live")).to_contain_text("live")
    wait_until(lambda: events.ACTIVE >= 1, timeout=10, what="the page's stream to open")
    page.goto("about:blank")
    wait_until(lambda: events.ACTIVE == 0, timeout=15, what="the stream to end")


def test_static_files_need_no_token_and_fetch_nothing_from_elsewhere(base: str) -> None:
    index = httpx.get(f"{base}/ui/")
    assert index.status_code == 200 and "app.js" in index.text
    for name in sorted(p.name for p in (Path(dashboard_demo.__file__).parents[1] / "controller"
                                        / "dashboard" / "static").iterdir()):
        text = httpx.get(f"{base}/ui/{name}").text
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and \
            "https://" not in text, name
