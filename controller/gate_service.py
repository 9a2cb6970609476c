"""The imperative shell of gate control: out-gate decisions in the ingest's batch, and the
sender that publishes, re-sends and expires commands.

Where the decision runs: **inside the batch's transaction**, as a supervision step
(``GateControl.supervise``, called by the ingest after the rules), for every weighing of a
device whose site spec has role ``out``. The weighing, the decision (``gate_decisions``
row and ``gate`` ledger decision), the command (``commands`` row and ``command`` decision),
the ``gate_denied`` alert and the order's departure commit together or not at all. Only
the MQTT publish comes after the commit, from the ``commands`` table, so a crash between
commit and publish leaves a pending command that the sender publishes when the controller
is back (its first pass runs at start). A decision that fails (a bug, a missing order
module) is rolled back alone (a savepoint), logged and counted, and the weighing stays
undecided: at every start ``resume`` decides the out-gate weighings received within the
command lifetime that have no decision, so a truck is never left waiting for a decision
that was lost; older ones are left alone (the truck is gone or a person has decided).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import aiomqtt

from controller import calibration, commands
from controller.facts import Fact
from controller.gate import OPEN, Decision, Scale, decide
from controller.storage import commands as rows
from controller.storage import ledger_log, now_ms, transaction
from controller.storage.holds import active_hold
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

log = logging.getLogger("portwatch.gate")
RULE = "gate"
TICK_S = 0.5
Send = Callable[[dict[str, Any]], Awaitable[bool]]


def out_gates() -> frozenset[str]:
    """The devices of the current site whose spec has role ``out`` (empty without a site)."""
    try:
        from controller.site import current_site

        site = current_site()
    except Exception as exc:  # a bad site file must not stall ingest: no gate control then
        log.error("no site description, so no out-gate is controlled: %s", exc)
        return frozenset()
    return frozenset(d for d, spec in site.devices.items() if spec.role == "out")


def ttl_from_env() -> int:
    """How long a command stands (ms): ``$PORTWATCH_COMMAND_TTL_S`` (1-3600 s), else 60 s."""
    raw = os.environ.get("PORTWATCH_COMMAND_TTL_S")
    if raw is None:
        return commands.DEFAULT_TTL_MS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 1 <= seconds <= 3600:
        raise ValueError(f"PORTWATCH_COMMAND_TTL_S={raw!r}: give 1-3600 seconds (how long a "
                         "barrier command may wait for its truck's acknowledgement)")
    return int(seconds * 1000)


def _optional(module: str, name: str) -> Callable[..., Any] | None:
    """A function of a module another piece of work provides (orders, trips), or None."""
    try:
        found: Callable[..., Any] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found


def _display(decision: Decision, order: Mapping[str, Any] | None) -> str:
    if decision.action == OPEN:
        return f"GO {order['order_id'] if order else ''}".strip()[:64]
    return ("STOP: " + ", ".join(r.code.replace("_", " ") for r in decision.reasons))[:64]


class GateControl:
    """Out-gate decisions and the command sender of one controller."""

    def __init__(self, *, ttl_ms: int | None = None,
                 resend_ms: int = commands.RESEND_MS,
                 gates: Callable[[], frozenset[str]] = out_gates,
                 find_order: Callable[..., Any] | None = None,
                 depart: Callable[..., Any] | None = None) -> None:
        """``find_order(conn, plate, at_ms)`` and ``depart(conn, order_id, *, gate_device,
        weighing_seq, net_kg, time_ms)`` default to ``controller.storage.orders
        .open_order_for_plate`` and ``controller.trips.depart`` (looked up at each decision:
        the trips work provides them)."""
        self.find_order = find_order
        self.depart = depart
        self.ttl_ms = ttl_ms if ttl_ms is not None else ttl_from_env()
        self.resend_ms = resend_ms
        self.gates = gates
        self.failures = 0
        self.sent = 0

    # -- decisions (inside the batch's transaction) -------------------------------------

    def supervise(self, conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[Decision]:
        """Decide every out-gate weighing among ``facts``; the decisions made."""
        gates = None
        made: list[Decision] = []
        for fact in facts:
            if fact.kind != "weighing":
                continue
            if gates is None:
                gates = self.gates()
            if fact.device_id not in gates:
                continue
            b = fact.body
            division = fact.limits.division_kg if fact.limits and fact.limits.division_kg \
                else b["division_kg"]
            weighing = {"device_id": fact.device_id, "seq": fact.seq, "plate": b["plate"],
                        "net_kg": b["net_kg"], "division_kg": division,
                        "device_ts": fact.device_ts, "received_ms": fact.received_ms}
            found = self.decide_one(conn, weighing)
            if found is not None:
                made.append(found)
        return made

    def decide_one(self, conn: sqlite3.Connection, weighing: dict[str, Any],
                   at_ms: int | None = None) -> Decision | None:
        """Decide one weighing in a savepoint; None when it failed (logged, left undecided)
        or was decided before."""
        try:
            with rows.savepoint(conn):
                return self._decide(conn, weighing, now_ms() if at_ms is None else at_ms)
        except Exception:  # a decision's bug must not stall ingest: resume retries it
            self.failures += 1
            log.exception("gate decision for %s seq %s failed; left undecided (retried at "
                          "the next start)", weighing["device_id"], weighing["seq"])
            return None

    def _decide(self, conn: sqlite3.Connection, w: dict[str, Any],
                now: int) -> Decision | None:
        device_id, seq = w["device_id"], w["seq"]
        if rows.gate_decision(conn, device_id, seq) is not None:
            return None
        find_order = self.find_order or _optional("controller.storage.orders",
                                                  "open_order_for_plate")
        order = find_order(conn, w["plate"], w["received_ms"]) if find_order else None
        hold = active_hold(conn, order["lot"]) if order else None
        lapsed = calibration.status_at(conn, device_id, w["device_ts"]) == calibration.EXPIRED
        decision = decide({"plate": w["plate"], "net_kg": w["net_kg"],
                           "time_ms": w["received_ms"]}, order, hold,
                          Scale(e_kg=w["division_kg"], out_of_calibration=lapsed))
        cause = {"device_id": device_id, "seq": seq}
        cmd = commands.issue(
            conn, device_id=device_id, kind="barrier", now_ms=now,
            device_offset_ms=rows.device_clock_offset(conn, device_id), ttl_ms=self.ttl_ms,
            body={"action": decision.action, "weighing_seq": seq,
                  "reason": decision.summary(), "display": _display(decision, order)},
            cause=cause)
        order_id = order["order_id"] if order else None
        lot = order["lot"] if order else None
        rows.insert_gate_decision(conn, {
            "device_id": device_id, "weighing_seq": seq, "action": decision.action,
            "reasons_json": json.dumps(decision.body()["reasons"]),
            "order_id": order_id, "lot": lot, "plate": w["plate"], "command_id": cmd["id"],
            "decided_ms": now})
        ledger_log.append_decision(conn, "gate", "controller", {
            **decision.body(), "device_id": device_id, "weighing_seq": seq,
            "plate": w["plate"], "net_kg": w["net_kg"], "order_id": order_id, "lot": lot,
            "expected_net_kg": order["expected_net_kg"] if order else None,
            "command_id": cmd["id"]}, now)
        if decision.action == OPEN:
            assert order is not None
            depart = self.depart or _optional("controller.trips", "depart")
            if depart is None:
                log.warning("order %s cleared at %s but controller.trips.depart is not "
                            "installed: the trip is not started", order_id, device_id)
            else:
                depart(conn, order["order_id"], gate_device=device_id, weighing_seq=seq,
                       net_kg=w["net_kg"], time_ms=now)
        else:
            apply_alert(conn, RULE, Alert(
                code="gate_denied", device_id=device_id, active=True, severity="warning",
                subject=f"weighing {seq}", detail={
                    "plate": w["plate"], "order_id": order_id, "lot": lot,
                    "reasons": decision.body()["reasons"], "command_id": cmd["id"]}),
                device_ts=w.get("device_ts"), received_ms=now, seq=seq, cause=cause)
        log.info("gate %s seq %d plate %s: %s %s", device_id, seq, w["plate"],
                 decision.action, decision.summary())
        return decision

    def resume(self, conn: sqlite3.Connection, at_ms: int | None = None) -> int:
        """Decide the out-gate weighings received within the command lifetime that have
        no decision (a crash or a failed decision); how many were decided."""
        now = now_ms() if at_ms is None else at_ms
        n = 0
        with transaction(conn):
            for w in rows.undecided_weighings(conn, sorted(self.gates()), now - self.ttl_ms):
                if self.decide_one(conn, w, now) is not None:
                    n += 1
        if n:
            log.warning("decided %d out-gate weighing(s) left undecided before this start", n)
        return n

    # -- the sender (after commits) -------------------------------------------------------

    def _pass(self, conn: sqlite3.Connection) -> list[dict[str, Any]]:
        now = now_ms()
        with transaction(conn):
            for r in commands.expire_due(conn, now):
                log.error("command %s to %s (%s) expired unacknowledged after %d attempt(s)",
                          r["id"], r["device_id"], r["kind"], r["attempts"])
            return commands.due(conn, now, self.resend_ms)

    def _mark(self, conn: sqlite3.Connection, command_id: str) -> None:
        with transaction(conn):
            rows.mark_sent(conn, command_id, now_ms())

    async def run(self, conn: sqlite3.Connection, executor: Executor, send: Send) -> None:
        """Forever: decide what a crash left undecided (once), then every ``TICK_S`` expire
        and (re-)send the due commands through ``send`` (False: not sent, tried again)."""
        loop = asyncio.get_running_loop()
        resumed = False
        while True:
            try:
                if not resumed:
                    await loop.run_in_executor(executor, self.resume, conn)
                    resumed = True
                for r in await loop.run_in_executor(executor, self._pass, conn):
                    if await send(r):
                        self.sent += 1
                        await loop.run_in_executor(executor, self._mark, conn, r["id"])
            except (sqlite3.Error, OSError, aiomqtt.MqttError) as exc:
                # the store busy, the link lost mid-publish: what was not marked sent goes
                # again at the next pass
                log.warning("command sender: %s; trying again", exc)
            except Exception:  # a bug must not end the sender: commands would wait forever
                log.exception("command sender failed; trying again")
            await asyncio.sleep(TICK_S)
