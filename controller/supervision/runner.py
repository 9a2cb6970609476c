"""Apply the rules to a batch of facts inside the batch's transaction.

For each rule in order: load its state for the scopes the batch touches, feed it the
facts of its kinds in the order they were accepted, store its new state, and turn its
findings into alert rows and ledger decisions, all in the transaction that stores the
facts, so that after a crash the facts, the rule state and the findings are all there or
none is. A rule that raises is logged and counted, its state for that fact is kept as it
was, and the other rules go on.

Besides devices' facts the runner takes the controller's own (``trip_departed``,
``trip_closed``, ``tick``: controller/trips.py), scoped by the tracker's device id, so the
trip rules learn of departures and of the passing time while no fix arrives. A rule's
``TripEvent`` findings go to the trip's history (controller.trips.record_event); ``Hold``
findings put a lot on hold (controller.holds.place_hold, idempotent per kind).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.facts import Fact
from controller.storage import supervision as rows
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Finding, Hold
from controller.supervision.rules import RULES, Rule
from controller.supervision.trip_events import TripEvent
from controller.supervision.trip_track import CONTROLLER_KINDS

log = logging.getLogger("portwatch.supervision")


@dataclass(slots=True)
class RunnerStats:
    """Counters since the controller started."""

    facts: int = 0
    findings: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    last_failure: str = ""


class Runner:
    """The supervision step of the ingest: ``runner(conn, facts)`` inside a transaction."""

    def __init__(self, rules: Sequence[Rule] = RULES,
                 config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ValueError(f"rule names must be unique: {names}")
        unknown = set(config or {}) - set(names)
        if unknown:
            raise ValueError(f"configuration for unknown rules {sorted(unknown)}: "
                             f"the rules are {names}")
        self.rules = tuple(rules)
        self.config = {r.name: {**r.defaults, **(config or {}).get(r.name, {})} for r in rules}
        self.stats = RunnerStats()

    def __call__(self, conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[Finding]:
        """Run every rule over ``facts``; return the findings (already stored)."""
        if not conn.in_transaction:
            raise RuntimeError("supervision runs inside the batch's transaction")
        self.stats.facts += len(facts)
        from controller import samples  # lab samples learn their lot before the rules run

        facts = samples.attach(conn, facts)
        from controller import trains  # passages learn their train's manifest

        facts = trains.attach(conn, facts)
        out: list[Finding] = []
        for rule in self.rules:
            mine = [f for f in facts if f.kind in rule.kinds]
            if mine:
                out += self._run(conn, rule, mine)
        self.stats.findings += len(out)
        return out

    def _run(self, conn: sqlite3.Connection, rule: Rule, facts: Sequence[Fact]) -> list[Finding]:
        states = rows.load_states(conn, rule.name, (rule.scope(f) for f in facts))
        changed: dict[str, dict[str, Any]] = {}
        found: list[Finding] = []
        for fact in facts:
            scope = rule.scope(fact)
            before = states.get(scope, {})
            try:
                after, findings = rule.update(before, fact, self.config[rule.name])
            except Exception as exc:  # a rule's bug must not stall ingest or other rules
                self._failed(rule, fact, exc)
                continue
            if after != before:
                states[scope] = changed[scope] = after
            for finding in findings:
                if self._apply(conn, rule, fact, finding):
                    found.append(finding)
        if changed:
            rows.save_states(conn, rule.name, changed, facts[-1].received_ms)
        return found

    def _failed(self, rule: Rule, fact: Fact, exc: Exception) -> None:
        self.stats.failures[rule.name] = self.stats.failures.get(rule.name, 0) + 1
        self.stats.last_failure = f"{rule.name} on {fact.device_id} seq {fact.seq}: {exc!r}"
        log.exception("rule %s failed on %s seq %d (kind %s); the other rules go on",
                      rule.name, fact.device_id, fact.seq, fact.kind)

    def _apply(self, conn: sqlite3.Connection, rule: Rule, fact: Fact,
               finding: Finding) -> bool:
        """Store one finding; False when it changes nothing (already so)."""
        if isinstance(finding, TripEvent):
            from controller import trips  # trips feeds this runner: imported at use

            return trips.record_event(conn, finding.trip_id, finding.event, finding.ts,
                                      finding.detail, actor=f"rule:{rule.name}",
                                      time_ms=fact.received_ms) is not None
        if isinstance(finding, Hold):
            from controller import holds  # holds reads the store the runner writes

            # in this transaction: the lot is held with the fact that holds it
            holds.place_hold(conn, finding.lot, kind=finding.kind, reason=finding.reason,
                             actor=f"rule:{rule.name}", time_ms=fact.received_ms)
            return True
        if fact.kind in CONTROLLER_KINDS:  # no device seq: the cause is the controller's
            return apply_alert(conn, rule.name, finding, device_ts=fact.device_ts,
                               received_ms=fact.received_ms, seq=None,
                               cause={"device_id": fact.device_id, "controller": fact.kind})
        return apply_alert(conn, rule.name, finding, device_ts=fact.device_ts,
                           received_ms=fact.received_ms, seq=fact.seq,
                           cause={"device_id": fact.device_id, "seq": fact.seq})
