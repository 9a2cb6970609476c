"""The controller's own audit, running: at start over everything, then continually.

At start the full audit (controller/audit.py) replays every custody event in the ledger
and compares every served row, with its progress in the log. Then, every few seconds, the
rows made by the entries appended since are read back and compared with their replay
(cheap: only those keys; it catches a trigger or a writer that stores other values than
the ledger holds), and on a longer timer the full audit runs again (an edit to an old row
behind the controller's back). Each mismatch raises a critical supervision alert
``store_tampered`` (subject: table and key) and appends an ``audit_mismatch`` decision to
the ledger, once: the same mismatch found again, in this run or after a restart, is not
reported again. Reads run on their own read snapshot in their own thread, so the ingest
never waits for an audit; only the reporting writes take the write lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from controller import audit
from controller.errors import ConfigError, ControllerError
from controller.ledger import entries as entry_mod
from controller.ledger.errors import LedgerError
from controller.storage import audit_reads, ledger_log, now_ms, open_store, read_snapshot
from controller.storage import supervision as alert_rows

log = logging.getLogger("portwatch.audit")
ENV_NEW = "PORTWATCH_AUDIT_NEW_S"
ENV_FULL = "PORTWATCH_AUDIT_FULL_S"
RULE, CODE = "audit", "store_tampered"
DECISION = "audit_mismatch"
PROGRESS_EVERY_S = 10.0
DEFAULT_NEW_S = 2.0       # rows of new entries: a few seconds after they are written
DEFAULT_FULL_S = 3600.0   # everything: an old row edited is found within the hour


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """How often the running controller audits (seconds; full 0: only at start)."""

    new_every_s: float = DEFAULT_NEW_S
    full_every_s: float = DEFAULT_FULL_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AuditSettings:
        """From ``PORTWATCH_AUDIT_NEW_S`` and ``PORTWATCH_AUDIT_FULL_S`` (defaults when
        unset); ConfigError when they are not numbers in range."""
        env = os.environ if env is None else env
        try:
            new = float(env.get(ENV_NEW) or DEFAULT_NEW_S)
            full = float(env.get(ENV_FULL) or DEFAULT_FULL_S)
        except ValueError as exc:
            raise ConfigError(f"{ENV_NEW} and {ENV_FULL} must be numbers: {exc}") from exc
        if not (0.05 <= new <= 86_400 and (full == 0 or 0.05 <= full <= 30 * 86_400)):
            raise ConfigError(f"{ENV_NEW} must be 0.05..86400 s and {ENV_FULL} 0 (start only) "
                              "or 0.05 s..30 days")
        return cls(new_every_s=new, full_every_s=full)


class AuditWatch:
    """Audits one store for as long as ``run`` runs."""

    def __init__(self, db_path: Path, settings: AuditSettings | None = None) -> None:
        self.db_path = db_path
        self.settings = settings or AuditSettings()
        self.position = 0  # the next ledger index the continual audit looks at
        self.replay: audit.Replay | None = None
        self.reported: set[str] | None = None  # signatures already in the ledger
        self.full_audits = 0
        self.found = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pw-audit")

    # -- in the audit thread -------------------------------------------------------------

    def full(self) -> audit.AuditReport:
        """The full audit now; report what it finds; the continual one goes on from there."""
        last = [time.monotonic()]

        def progress(done: int, total: int, events: int) -> None:
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S or done == total:
                last[0] = time.monotonic()
                log.info("audit: %d of %d devices, %d events replayed", done, total, events)

        with read_snapshot(self.db_path) as conn:
            replay = audit.Replay.load(conn)
            report = audit.audit_store(conn, progress=progress, replay=replay)
        self.full_audits += 1
        # the continual audit goes on after what this one saw (the same thread ran the
        # last continual step before it: the snapshot is at or past its position)
        self.replay, self.position = replay, max(self.position, report.ledger_size)
        log.info("audit: %d custody events from %d ledger entries checked in %.1f s: %s",
                 report.entries, report.ledger_size, report.seconds,
                 "clean" if report.clean else f"{len(report.mismatches)} mismatches")
        self.record(report.mismatches)
        return report

    def new_entries(self) -> audit.AuditReport:
        """Compare the rows of the entries appended since the last look."""
        with read_snapshot(self.db_path) as conn:
            if self.replay is None:
                self.replay = audit.Replay.load(conn)
            report, self.position = audit.audit_new(conn, self.position, self.replay)
        self.record(report.mismatches)
        return report

    def record(self, mismatches: Sequence[audit.Mismatch]) -> list[audit.Mismatch]:
        """Alert and log each mismatch not reported before; return those."""
        if not mismatches:
            return []
        store = open_store(self.db_path, migrate=False)
        try:
            with store.transaction() as conn:
                reported = self._reported(conn)
                fresh = [m for m in mismatches if m.signature() not in reported]
                now = now_ms()
                for m in fresh:
                    body = m.as_json()
                    ledger_log.append_decision(conn, DECISION, "controller", body, now)
                    subject = f"{m.table} {m.key}"
                    alert_id = alert_rows.raise_alert(
                        conn, rule=RULE, code=CODE, device_id=m.device_id,
                        subject=subject, severity="critical", detail=body,
                        raised_ts=now, raised_ms=now, raised_seq=None)
                    # the alert's own decision: the audit rebuilds ``alerts`` from these
                    ledger_log.append_decision(conn, "alert", f"rule:{RULE}", {
                        "alert_id": alert_id, "action": "raise", "rule": RULE, "code": CODE,
                        "device_id": m.device_id, "subject": subject,
                        "severity": "critical", "detail": body, "ts": now, "seq": None}, now)
                    reported.add(m.signature())
        finally:
            store.close()
        for m in fresh:
            self.found += 1
            log.critical("store tampered: %s %s %s (%s): the served row is not what the "
                         "ledger makes; see `portwatch ledger audit`", m.table, m.key,
                         m.problem, json.dumps(m.as_json(), ensure_ascii=False))
        return fresh

    def _reported(self, conn: sqlite3.Connection) -> set[str]:
        if self.reported is None:
            self.reported = set()
            for _, data in audit_reads.decisions(conn, [DECISION]):
                try:
                    e = entry_mod.decode(data)
                except LedgerError:
                    continue
                if isinstance(e, entry_mod.Decision):
                    self.reported.add(json.dumps(e.body, sort_keys=True, ensure_ascii=False))
        return self.reported

    # -- on the event loop ---------------------------------------------------------------

    async def run(self) -> None:
        """The start audit, then the continual and the periodic full ones, until cancelled."""
        loop = asyncio.get_running_loop()
        await self._step(loop, self.full, "start")
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.new_every_s)
            await self._step(loop, self.new_entries, "new entries")
            every = self.settings.full_every_s
            if every and time.monotonic() - last_full >= every:
                await self._step(loop, self.full, "periodic")
                last_full = time.monotonic()

    async def _step(self, loop: asyncio.AbstractEventLoop,
                    work: Callable[[], audit.AuditReport], what: str) -> None:
        try:
            await loop.run_in_executor(self._executor, work)
        except (sqlite3.Error, ControllerError, LedgerError) as exc:
            # a busy or altered store: say so, keep serving, try again next time
            log.error("audit (%s) did not complete: %s", what, exc)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
