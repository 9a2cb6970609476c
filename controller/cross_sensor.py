"""The cross-sensor check: the truck weighed under a plate must be where that plate's
tracker says it is.

For a weighing at a weighbridge of the site description (``current_site().devices``, its
zone), the plate's open or departing transfer order names the truck's tracker; one of its
fixes must lie on that weighbridge (in the zone or within ``near_m`` of it) within
``window_ms`` of the weighing's time (controller/supervision/presence.py). A weighing the
tracker does not place there is a swapped plate (or a tracker moved to another truck):
``tracker_not_at_weighbridge``, critical, on the weighbridge, subject the weighing's seq.

Positions may arrive after the weighing (a tracker batches its fixes, a JT/T 808
terminal may be out of coverage), so a check that does not find the truck yet waits,
pending: it is looked at again when positions of that tracker arrive and on a periodic
tick, and decided ``absent`` or ``unknown`` (the tracker sent nothing around that time, or
too little to tell: a different ``detail.verdict``) only after its deadline: the
tracker's own fixes reach ``after_ms`` past the weighing, or ``timeout_ms`` of the
controller's clock passed since it was received. ``present`` is decided at once. Every
verdict is a ``presence_check`` ledger decision in the transaction that makes it, with the
alert when there is one.

Times: the weighing's device time is brought to the controller's clock with the offset the
weighbridge's health reported (``limits.clock_offset_ms``); tracker fixes carry GPS time.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from controller.facts import Fact
from controller.site import Site, SiteError, current_site, geometry
from controller.storage import cross_sensor as rows
from controller.storage import ledger_log, now_ms, positions, transaction
from controller.storage import orders as order_rows
from controller.supervision import presence as core
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

log = logging.getLogger("portwatch.cross_sensor")

RULE = rows.RULE
CODE = "tracker_not_at_weighbridge"
WINDOW_MS = 2 * 60_000    # a fix within +-2 min of the weighing places the truck
AFTER_MS = 3 * 60_000     # decided once the tracker's fixes reach 3 min past it
TIMEOUT_MS = 10 * 60_000  # or 10 min of the controller's clock after it was received
TICK_S = 30.0


class CrossSensor:
    """The check's state machine over the store (one per controller)."""

    def __init__(self, *, window_ms: int = WINDOW_MS, after_ms: int = AFTER_MS,
                 timeout_ms: int = TIMEOUT_MS, near_m: float = core.NEAR_M,
                 site: Callable[[], Site] = current_site, tick_s: float = TICK_S) -> None:
        self.window_ms = window_ms
        self.after_ms = after_ms
        self.timeout_ms = timeout_ms
        self.near_m = near_m
        self.site = site
        self.tick_s = tick_s
        self.decided: dict[str, int] = {}  # verdict -> count since start
        self.failures = 0
        self._site_error = ""

    def _current_site(self) -> Site | None:
        try:
            site = self.site()
        except SiteError as exc:
            if str(exc) != self._site_error:  # once per distinct problem, not per batch
                log.error("cross-sensor check off: the site description does not load: %s",
                          exc)
                self._site_error = str(exc)
            return None
        self._site_error = ""
        return site

    # -- inside the batch's transaction ------------------------------------------------

    def supervise(self, conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[Alert]:
        """Open a check for each weighing at a site weighbridge with a tracked order, and
        look again at the pending checks of every tracker whose positions arrived; the
        alerts raised. A failure is logged and counted and leaves the batch alone (in a
        savepoint): the check must never stall ingest."""
        wanted = [f for f in facts if f.kind == "weighing"]
        moved = {f.device_id for f in facts if f.kind == "positions"}
        if not wanted and not (moved and moved & set(rows.pending(conn))):
            return []  # the common case of a tracker batch: nothing waits for it
        wanted += [f for f in facts if f.kind == "positions"]
        try:
            with rows.isolated(conn):
                return self._supervise(conn, wanted)
        except Exception:  # a bug here must not lose the batch's custody events
            self.failures += 1
            log.exception("cross-sensor check failed on a batch of %d facts; its weighings "
                          "are not checked", len(wanted))
            return []

    def _supervise(self, conn: sqlite3.Connection, wanted: Sequence[Fact]) -> list[Alert]:
        site = self._current_site()
        if site is None:
            return []
        now = max(f.received_ms for f in wanted)
        touched: set[str] = set()
        for fact in wanted:
            if fact.kind == "positions":
                touched.add(fact.device_id)
            else:
                tracker = self._open(conn, site, fact)
                if tracker is not None:
                    touched.add(tracker)
        raised: list[Alert] = []
        for tracker in sorted(touched):
            raised += self._evaluate(conn, site, tracker, now)
        return raised

    def _open(self, conn: sqlite3.Connection, site: Site, fact: Fact) -> str | None:
        spec = site.devices.get(fact.device_id)
        zone = site.zones.get(spec.zone) if spec is not None else None
        plate = fact.body.get("plate")
        if zone is None or not isinstance(plate, str) or not plate:
            return None
        offset = fact.limits.clock_offset_ms if fact.limits is not None else None
        t = fact.device_ts - (offset or 0)
        order = order_rows.open_order_for_plate(conn, plate, t) \
            or rows.order_for_plate(conn, plate, t)
        if order is None or not order.get("tracker_id"):
            return None
        tracker = str(order["tracker_id"])
        checks = rows.pending(conn, tracker).get(tracker, [])
        checks.append({"device_id": fact.device_id, "seq": fact.seq, "plate": plate,
                       "order_id": order["order_id"], "zone": zone.id, "t": t,
                       "device_ts": fact.device_ts, "received_ms": fact.received_ms})
        rows.save_pending(conn, tracker, checks, fact.received_ms)
        return tracker

    def _evaluate(self, conn: sqlite3.Connection, site: Site, tracker: str,
                  now: int) -> list[Alert]:
        checks = rows.pending(conn, tracker).get(tracker, [])
        if not checks:
            return []
        latest = positions.latest_fix(conn, tracker)
        latest_ts = int(latest["ts_ms"]) if latest is not None else None
        keep: list[dict[str, Any]] = []
        raised: list[Alert] = []
        for check in checks:
            zone = site.zones.get(check["zone"])
            if zone is None:
                log.warning("cross-sensor check of %s seq %s dropped: zone %s is no longer in "
                            "the site description", check["device_id"], check["seq"],
                            check["zone"])
                continue
            t = int(check["t"])
            fixes = positions.fixes_between(conn, tracker, t - self.window_ms,
                                            t + self.window_ms)
            verdict = core.presence(fixes, zone, t, self.window_ms, near_m=self.near_m)
            due = (latest_ts is not None and latest_ts >= t + self.after_ms) \
                or now >= int(check["received_ms"]) + self.timeout_ms
            if verdict != core.PRESENT and not due:
                keep.append(check)
                continue
            alert = self._decide(conn, site, tracker, check, verdict, fixes, zone, now)
            if alert is not None:
                raised.append(alert)
        rows.save_pending(conn, tracker, keep, now)
        return raised

    def _decide(self, conn: sqlite3.Connection, site: Site, tracker: str,
                check: dict[str, Any], verdict: str, fixes: Sequence[core.Fix],
                zone: Any, now: int) -> Alert | None:
        t = int(check["t"])
        seen = core.nearest(fixes, zone, t, self.window_ms)
        fix = seen.get("nearest_fix")
        if isinstance(fix, list):
            seen["nearest_zones"] = [z.id for z in geometry.zones_at(site, fix[1], fix[2])]
        body = {"device_id": check["device_id"], "seq": check["seq"], "plate": check["plate"],
                "order_id": check["order_id"], "tracker_id": tracker, "zone": zone.id,
                "t": t, "verdict": verdict, "window_ms": self.window_ms, **seen}
        ledger_log.append_decision(conn, "presence_check", "controller", body, now)
        self.decided[verdict] = self.decided.get(verdict, 0) + 1
        if verdict == core.PRESENT:
            return None
        why = (f"tracker {tracker} of order {check['order_id']} was not on {zone.id} within "
               f"{self.window_ms // 1000} s of the weighing: the plate may be on another "
               "truck" if verdict == core.ABSENT else
               f"tracker {tracker} of order {check['order_id']} sent too little around the "
               "weighing to place the truck (off, out of coverage, or removed)")
        alert = Alert(CODE, str(check["device_id"]), True, "critical", f"seq {check['seq']}",
                      {**body, "what": why})
        apply_alert(conn, RULE, alert, device_ts=int(check["device_ts"]), received_ms=now,
                    seq=int(check["seq"]),
                    cause={"device_id": check["device_id"], "seq": check["seq"]})
        log.warning("%s: %s seq %s plate %s: %s", CODE, check["device_id"], check["seq"],
                    check["plate"], why)
        return alert

    # -- periodic -----------------------------------------------------------------------

    def tick(self, conn: sqlite3.Connection, now: int | None = None) -> list[Alert]:
        """Look at every pending check once (their wall-clock deadlines); alerts raised."""
        at = now_ms() if now is None else now
        if not rows.pending(conn):  # a read first: the write lock only with work to do
            return []
        with transaction(conn):
            site = self._current_site()
            if site is None:
                return []
            raised: list[Alert] = []
            for tracker in sorted(rows.pending(conn)):
                raised += self._evaluate(conn, site, tracker, at)
        return raised

    async def run(self, conn: sqlite3.Connection, executor: Executor) -> None:
        """Tick every ``tick_s`` seconds in the writer's thread, forever."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await loop.run_in_executor(executor, self.tick, conn)
            except (sqlite3.Error, ValueError) as exc:  # the next tick retries
                log.error("cross-sensor tick failed: %s", exc)
