"""A store with something on every dashboard page, an in-process API server over it, and the
dashboard's screenshots (``portwatch dashboard screenshots``).

The store is filled the way the controller fills it: device messages are signed with each
device's key and committed by the ingest's writer with the supervision rules and the real
out-gate control in the batch (so alerts, gate decisions and departures are the
controller's own), and operators' actions go through the API with their tokens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.testclient import TestClient

from controller import auth, registry
from controller.api.app import create_app
from controller.gate_service import GateControl
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.site import current_site, set_site
from controller.storage import Store, now_ms, open_store
from controller.supervision.runner import Runner
from protocols import envelope, topics

SITE_ID = "dalian-north"
LOT = "LOT-2026-0101"
PAGES = ("fleet", "device/wb-in", "alerts", "map/site", "map/port", "trip/{trip}", "lot/" + LOT,
         "gate")


@dataclass
class Feeder:
    """Signs device messages and commits them as the ingest does (rules + out-gate)."""

    db: Store
    runner: Runner = field(default_factory=Runner)
    gate: GateControl = field(default_factory=lambda: GateControl(
        gates=lambda: frozenset({"wb-out"})))
    seqs: dict[tuple[str, str], int] = field(default_factory=dict)
    last_fix_ms: dict[str, int] = field(default_factory=dict)

    def _supervise(self, conn: Any, facts: Sequence[Any]) -> list[object]:
        return [*self.runner(conn, facts), *self.gate.supervise(conn, facts)]

    def send(self, device_id: str, kind: str, body: dict[str, Any], *, channel: str = "evt",
             ts: int | None = None) -> None:
        """One message from ``device_id``, committed now."""
        dev = registry.get(self.db, device_id)
        seq = self.seqs.get((device_id, channel), 0) + 1
        self.seqs[(device_id, channel)] = seq
        now = now_ms()
        topic = topics.topic(SITE_ID, device_id, channel)
        wire = envelope.seal(bytes.fromhex(dev["secret_hex"]), dev["key_id"], topic,
                             envelope.make(device_id, 1, seq, ts or now, kind, body))
        msg = check_message(Received(topic, wire, now), site=SITE_ID,
                            keys=registry.secrets_by_device(self.db))
        commit_batch(self.db.conn, [msg], supervise=self._supervise)

    def health(self, device_id: str, **figures: Any) -> None:
        """A health sample with the agent's fields (``figures`` override them)."""
        body = {"fw": "0.9.2", "uptime_s": 86_400, "mem_free": 41_000, "backlog": 0,
                "backlog_bytes": 0, "clock_offset_ms": 0, "connects": 1,
                "connect_failures": 0, "links_lost": 0, "resends": 0, "outbox_crc_errors": 0,
                "emit_errors": 0, "mem_errors": 0, "bad_downlink": 0, **figures}
        self.send(device_id, "health", body, channel="tele")

    def fixes(self, tracker: str, points: Sequence[tuple[int, int]], *,
              step_ms: int = 200) -> None:
        """One ``positions`` message with these fixes, the first now (after the departure
        just decided), ``step_ms`` apart."""
        start = max(now_ms(), self.last_fix_ms.get(tracker, 0) + step_ms)
        fixes = [[start + i * step_ms, la, lo, 600, 0, 9, 8] for i, (la, lo) in
                 enumerate(points)]
        self.last_fix_ms[tracker] = fixes[-1][0]
        self.send(tracker, "positions", {"fixes": fixes, "ign": True, "ext_power": True,
                                         "tamper": False, "src": "nmea"}, ts=fixes[-1][0])


def along(corridor: str, fraction: float, offset_e6: int = 0) -> tuple[int, int]:
    """A point ``fraction`` of the way along a corridor of the site (by points), moved
    ``offset_e6`` micro-degrees north (off the corridor when large)."""
    pts = current_site().corridors[corridor].points
    x = max(0.0, min(1.0, fraction)) * (len(pts) - 1)
    i = min(int(x), len(pts) - 2)
    f = x - i
    (a1, o1), (a2, o2) = pts[i], pts[i + 1]
    return int(a1 + (a2 - a1) * f) + offset_e6, int(o1 + (o2 - o1) * f)


def path(corridor: str, start: float, end: float, n: int,
         offset_e6: int = 0) -> list[tuple[int, int]]:
    """``n`` points from ``start`` to ``end`` (fractions) along a corridor."""
    return [along(corridor, start + (end - start) * i / max(1, n - 1), offset_e6)
            for i in range(n)]


@dataclass
class Demo:
    """What ``seed`` made: the tokens by role and the trip ids by plate."""

    tokens: dict[str, str]
    trips: dict[str, str]
    feeder: Feeder


TRUCKS = (  # plate, tracker, corridor, how far along, off the corridor (micro-degrees)
    ("辽B12345", "trk-01", "c-feed-mill", 0.55, 4_000),
    ("辽B23456", "trk-02", "c-grain-depot", 0.35, 0),
    ("辽B34567", "trk-03", "c-feed-mill", 0.8, 0),
    ("辽B45678", "trk-04", "c-grain-depot", 0.7, 0),
)


def seed(db_path: Path, progress: Callable[[str], None] = lambda _m: None) -> Demo:
    """Make a store at ``db_path`` with devices, health, calibrations, a lot, trips on both
    corridors (one off its corridor), gate decisions and alerts in every state."""
    set_site(None)  # the bundled demo site
    db = open_store(db_path, create=True)
    tokens = {role: auth.create_token(db, name=f"demo-{role}", role=role)
              for role in auth.ROLES}
    app = create_app(db_path=db_path, site=SITE_ID)
    api = TestClient(app)

    def call(method: str, url: str, role: str, body: dict[str, Any] | None = None) -> Any:
        r = api.request(method, url, json=body,
                        headers={"Authorization": f"Bearer {tokens[role]}"})
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text}")
        return r.json()

    progress("devices")
    for device_id, kind in (("wb-in", "weighbridge"), ("wb-out", "weighbridge"),
                            ("lab-1", "lab"), ("rail-1", "rail_reader"),
                            ("wb-spare", "weighbridge"),
                            *((t[1], "gps") for t in TRUCKS), ("trk-09", "gps")):
        call("POST", "/api/v1/devices", "admin", {"device_id": device_id, "kind": kind,
                                                   "description": f"demo {kind}"})
    now = now_ms()
    day = 86_400_000
    for device_id, expires in (("wb-in", now + 12 * day), ("wb-out", now + 200 * day),
                               ("wb-spare", now - 3 * day)):
        call("POST", f"/api/v1/devices/{device_id}/calibrations", "admin", {
            "certificate_id": f"CAL-{device_id}", "accuracy_class": "III", "e_kg": 20,
            "issued_ms": now - 300 * day, "expires_ms": expires, "issuer": "Dalian metrology"})
    call("POST", "/api/v1/devices/lab-1/calibrations", "admin", {
        "certificate_id": "CAL-lab-1", "accuracy_class": "analyzer", "issued_ms": now - day,
        "expires_ms": now + 90 * day, "issuer": "lab"})
    feeder = Feeder(db)
    progress("health")
    feeder.health("wb-in", mem_free=38_200, backlog=2, uptime_s=302_400)
    feeder.health("wb-out", mem_free=12_400, backlog=140, links_lost=3, resends=51,
                  connect_failures=2, mem_errors=1, uptime_s=7_200)
    feeder.health("lab-1", mem_free=45_100, clock_offset_ms=95_000)
    feeder.health("rail-1", mem_free=29_800, uptime_s=950_000)
    feeder.health("wb-spare", mem_free=40_000)
    for plate, tracker, *_ in TRUCKS:
        feeder.health(tracker, mem_free=52_000 - len(plate) * 100, uptime_s=3_600)
    feeder.send("wb-spare", "death", {"reason": "lost"}, channel="state")
    progress("lot, orders, trips")
    call("POST", "/api/v1/lots", "operator", {
        "lot_id": LOT, "declaration_no": "CN-DL-2026-118001", "commodity": "soybeans",
        "hs_code": "120190", "origin_country": "BR", "vessel": "MV Ocean Harvest",
        "declared_kg": 60_000_000, "kind": "grain"})
    trips = {}
    for i, (plate, tracker, corridor, far, off) in enumerate(TRUCKS):
        order = call("POST", "/api/v1/orders", "operator", {
            "lot": LOT, "plate": plate, "tracker_id": tracker,
            "destination": current_site().corridors[corridor].to_zone, "corridor": corridor,
            "window_start": now - 3_600_000, "window_end": now + 6 * 3_600_000,
            "expected_net_kg": 30_000 + 100 * i})
        feeder.send("wb-out", "weighing", {
            "plate": plate, "gross_kg": 45_000 + 100 * i, "tare_kg": 15_000,
            "net_kg": 30_000 + 100 * i, "division_kg": 20, "stable_ms": 3000,
            "arrived_ts": now - 600_000 + 60_000 * i, "model": "sim"})
        trips[plate] = order["order_id"]
        feeder.fixes(tracker, path(corridor, 0.0, far - 0.05, 10))
        feeder.fixes(tracker, path(corridor, far - 0.04, far, 6, off))
    feeder.send("wb-out", "weighing", {  # no order for this plate: the gate denies it
        "plate": "辽B99999", "gross_kg": 44_000, "tare_kg": 15_000, "net_kg": 29_000,
        "division_kg": 20, "stable_ms": 3000, "arrived_ts": now - 30_000, "model": "sim"})
    progress("alerts")
    feeder.send("wb-in", "alarm", {"alarm": "overload", "state": "raised",
                                   "detail": {"kg": 61_000}})
    feeder.send("rail-1", "alarm", {"alarm": "tamper", "state": "raised", "detail": {}})
    feeder.send("lab-1", "alarm", {"alarm": "sensor_fault", "state": "raised", "detail": {}})
    alerts = call("GET", "/api/v1/alerts?state=open", "operator")
    by_code = {a["device_id"]: a["id"] for a in alerts}
    if "rail-1" in by_code:
        call("POST", f"/api/v1/alerts/{by_code['rail-1']}/ack", "operator",
             {"comment": "guard sent to the rail yard"})
    if "lab-1" in by_code:
        call("POST", f"/api/v1/alerts/{by_code['lab-1']}/resolve", "operator",
             {"comment": "sensor cleaned, readings normal"})
    return Demo(tokens=tokens, trips=trips, feeder=feeder)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(db_path: Path, *, port: int | None = None) -> Iterator[str]:
    """The controller's API (and /ui/) over ``db_path`` in a thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(create_app(db_path=db_path, site=SITE_ID), host="127.0.0.1",
                            port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-api", daemon=True)
    thread.start()
    deadline = 200  # x 50 ms
    while not server.started and thread.is_alive() and deadline:
        threading.Event().wait(0.05)
        deadline -= 1
    if not server.started:
        raise RuntimeError(f"the API did not start on 127.0.0.1:{port}: is the port taken?")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/setup.sh installs it)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 768}
READY = {  # what shows once a page has its data
    "fleet": "[data-testid=device-row]", "device": "[data-testid=chart-heap]",
    "alerts": "[data-testid=alert-row]", "map": "[data-testid=truck]",
    "trip": "[data-testid=track]", "lot": "[data-testid=lot-balance], [data-testid=error]",
    "gate": "[data-testid=gate-row]",
}


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Debian chromium driven by Playwright (never Playwright's own download)."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install it with `apt-get install -y "
                           "chromium` (scripts/setup.sh does as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Any, base: str, token: str) -> None:
    """Open /ui/, paste ``token`` at the login page and wait for the fleet page."""
    page.goto(f"{base}/ui/#/login")
    page.get_by_test_id("token").fill(token)
    page.get_by_test_id("login").click()
    page.get_by_test_id("nav-fleet").wait_for()


def screenshots(out: Path, progress: Callable[[str], None] = lambda _m: None,
                workdir: Path | None = None) -> list[Path]:
    """Seed a demo store, serve it, and write one 1366x768 PNG per main page into ``out``."""
    import tempfile

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db_path = Path(tmp) / "pw.db"
        demo = seed(db_path, lambda m: progress(f"seeding: {m}"))
        trip = demo.trips[TRUCKS[0][0]]
        with serve(db_path) as base, chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT, locale="en-US")
            log_in(page, base, demo.tokens["operator"])
            for name in PAGES:
                hash_ = name.format(trip=trip)
                page.goto(f"{base}/ui/#/{hash_}")
                page.locator(READY[hash_.split("/")[0]]).first.wait_for()
                page.wait_for_load_state("networkidle")
                file = out / f"dashboard-{hash_.split('/')[0]}" \
                    f"{'-' + hash_.split('/')[1] if hash_.startswith('map/') else ''}.png"
                page.screenshot(path=str(file))
                written.append(file)
                progress(f"wrote {file} ({file.stat().st_size // 1024} KB)")
            page.get_by_test_id("lang").click()
            page.goto(f"{base}/ui/#/fleet")
            page.locator(READY["fleet"]).first.wait_for()
            file = out / "dashboard-fleet-zh.png"
            page.screenshot(path=str(file))
            written.append(file)
            progress(f"wrote {file} ({file.stat().st_size // 1024} KB)")
    return written
