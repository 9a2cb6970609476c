"""Alerts about instruments' calibration: ``calibration_expired`` when an instrument reports
after its certificate expired, ``calibration_due`` when its last certificate runs out within
N days (a tick). Both go through controller/supervision/apply.apply_alert (ledger decisions).

``calibration_expired`` is raised once per device and certificate (subject: the certificate
that lapsed), even if an operator resolves it and the device keeps reporting; it clears
itself when the device reports under a valid certificate again. ``calibration_due``
(subject: the certificate) clears when a renewal makes another certificate the last one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller import calibration
from controller.errors import ControllerError
from controller.storage import calibrations as rows
from controller.storage import now_ms, open_store, transaction
from controller.storage.commands import savepoint
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

RULE = "calibration"
EXPIRED_CODE, DUE_CODE = "calibration_expired", "calibration_due"
DEFAULT_DUE_DAYS = 30
ENV_DUE_DAYS = "PORTWATCH_CALIBRATION_DUE_DAYS"
EVERY_S = 3600.0
DAY_MS = 86_400_000
log = logging.getLogger("portwatch.calibration")


def _active_subjects(conn: sqlite3.Connection, device_id: str | None,
                     code: str) -> list[tuple[str, str]]:
    return rows.active_alert_subjects(conn, RULE, code, device_id)


def _lapsed(conn: sqlite3.Connection, device_id: str, time_ms: int) -> dict[str, Any] | None:
    """The device's certificate that expired last at or before ``time_ms``."""
    gone = [c for c in rows.for_device(conn, device_id) if c["expires_ms"] <= time_ms]
    return max(gone, key=lambda c: (c["expires_ms"], c["certificate_id"])) if gone else None


def supervise(conn: sqlite3.Connection, facts: Sequence[Any]) -> list[Alert]:
    """Judge each device's latest custody event of the batch against its certificates
    (inside the batch's transaction); the alerts raised or cleared. A failure is logged and
    leaves the batch alone (in a savepoint)."""
    try:
        with savepoint(conn, "calibration_watch"):
            return _supervise(conn, facts)
    except Exception:  # a bug here must not lose the batch's custody events
        log.exception("calibration alerts not checked for a batch of %d facts", len(facts))
        return []


def _supervise(conn: sqlite3.Connection, facts: Sequence[Any]) -> list[Alert]:
    latest: dict[str, Any] = {}
    for f in facts:
        if getattr(f, "device_ts", None) is None:
            continue
        if f.device_id not in latest or f.device_ts > latest[f.device_id].device_ts:
            latest[f.device_id] = f
    if not latest:
        return []
    tracked = rows.windows(conn, set(latest))
    changed: list[Alert] = []
    for dev in sorted(tracked):
        fact = latest[dev]
        status = calibration.status_at(conn, dev, fact.device_ts)
        if status == calibration.VALID:
            for _, subject in _active_subjects(conn, dev, EXPIRED_CODE):
                alert = Alert(EXPIRED_CODE, dev, active=False, subject=subject)
                if apply_alert(conn, RULE, alert, device_ts=fact.device_ts,
                               received_ms=fact.received_ms, seq=fact.seq):
                    changed.append(alert)
            continue
        cert = _lapsed(conn, dev, fact.device_ts)
        subject = cert["certificate_id"] if cert else "not-yet-valid"
        if rows.ever_alerted(conn, RULE, dev, EXPIRED_CODE, subject):
            continue
        alert = Alert(EXPIRED_CODE, dev, active=True, severity="warning", subject=subject,
                      detail={"certificate_id": subject,
                              "expired_ms": cert["expires_ms"] if cert else None,
                              "reading_ts": fact.device_ts, "kind": fact.kind,
                              "what_to_do": "recalibrate the instrument and record the new "
                                            "certificate (portwatch calibration add)"})
        apply_alert(conn, RULE, alert, device_ts=fact.device_ts, received_ms=fact.received_ms,
                    seq=fact.seq, cause={"device_id": dev, "seq": fact.seq})
        changed.append(alert)
    return changed


def tick_due(conn: sqlite3.Connection, *, now: int, within_days: float) -> list[Alert]:
    """Raise ``calibration_due`` for each device whose last certificate expires within
    ``within_days`` of ``now``; clear those no longer due (inside the caller's transaction)."""
    due = {(r["device_id"], r["certificate_id"]): r
           for r in calibration.due(conn, within_days=within_days, now=now)}
    changed: list[Alert] = []
    for (dev, cert), r in sorted(due.items()):
        alert = Alert(DUE_CODE, dev, active=True, severity="info", subject=cert,
                      detail={"certificate_id": cert, "expires_ms": r["expires_ms"],
                              "days_left": round((r["expires_ms"] - now) / DAY_MS, 1)})
        if apply_alert(conn, RULE, alert, device_ts=None, received_ms=now):
            changed.append(alert)
    for dev, cert in _active_subjects(conn, None, DUE_CODE):
        if (dev, cert) not in due:
            alert = Alert(DUE_CODE, dev, active=False, severity="info", subject=cert)
            if apply_alert(conn, RULE, alert, device_ts=None, received_ms=now):
                changed.append(alert)
    return changed


def due_days_from_env() -> float:
    """``$PORTWATCH_CALIBRATION_DUE_DAYS`` (0-3660), else 30."""
    raw = os.environ.get(ENV_DUE_DAYS)
    try:
        days = DEFAULT_DUE_DAYS if raw is None else float(raw)
    except ValueError:
        days = -1.0
    if not 0 <= days <= 3660:
        raise ValueError(f"{ENV_DUE_DAYS}={raw!r}: give 0-3660 days (how long before a "
                         "certificate expires calibration_due is raised)")
    return days


def tick_once(db_path: Path, within_days: float) -> int:
    """One ``calibration_due`` pass over the store; how many alerts changed."""
    store = open_store(db_path, migrate=False)
    try:
        with transaction(store.conn) as conn:
            return len(tick_due(conn, now=now_ms(), within_days=within_days))
    finally:
        store.close()


async def run_due_ticks(db_path: Path, every_s: float = EVERY_S) -> None:
    """``tick_once`` every ``every_s`` seconds (hourly: certificates run for months) until
    cancelled; a failed pass is logged and the next one runs."""
    try:
        days = due_days_from_env()
    except ValueError as exc:  # a typo in the environment must not stop the controller
        log.error("%s; using %d days", exc, DEFAULT_DUE_DAYS)
        days = DEFAULT_DUE_DAYS
    while True:
        try:
            await asyncio.to_thread(tick_once, db_path, days)
        except (ControllerError, sqlite3.Error) as exc:
            log.error("calibration due check failed (next in %.0f s): %s", every_s, exc)
        await asyncio.sleep(every_s)
