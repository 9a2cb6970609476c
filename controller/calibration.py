"""Instruments' calibration certificates: recorded, looked up at a time, due.

A certificate makes a device's readings legally usable from ``issued_ms`` until before
``expires_ms``. Recording one is a ledger decision ``calibration`` in the same transaction
as its row (controller/audit_calibration.py rebuilds the table from them).

Which devices are judged: only those with at least one certificate on file. A device
without any is "not under calibration control" (the demo's simulators, a site that does
not track certificates here): its readings are not flagged, ``valid_at`` is False for it
and ``status_at`` says ``untracked`` so callers can tell "never recorded" from "lapsed".
Once a device has a certificate, a reading outside every certificate's window is flagged
``out_of_calibration`` (controller/plausibility.py) and cannot open the out-gate
(controller/gate.py: ``scale_out_of_calibration``).
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from controller.errors import Conflict, InvalidInput, UnknownDevice
from controller.storage import Store, ledger_log, now_ms
from controller.storage import calibrations as rows

#: R76 classes (non-automatic scales: truck weighbridges are III), R106 classes (in-motion
#: rail), and ``analyzer`` (a lab instrument: no mass class)
SCALE_CLASSES = ("I", "II", "III", "IIII")
RAIL_CLASSES = ("0.2", "0.5", "1", "2")
CLASSES = (*SCALE_CLASSES, *RAIL_CLASSES, "analyzer")
VALID, EXPIRED, UNTRACKED = "valid", "expired", "untracked"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}\Z")
_TEXT_MAX = 200
_MAX_VALIDITY_MS = 10 * 366 * 86_400_000  # no certificate runs for more than ten years


def _check(device_id: str, certificate_id: str, accuracy_class: str, e_kg: int | None,
           issued_ms: int, expires_ms: int, issuer: str) -> None:
    if not _ID.match(certificate_id):
        raise InvalidInput(f"certificate id {certificate_id[:80]!r}: use 1-64 letters, "
                           "digits, '.', '_', '/' or '-'")
    if accuracy_class not in CLASSES:
        raise InvalidInput(f"class {accuracy_class!r} is not one of {', '.join(CLASSES)} "
                           "(III for a truck scale, 0.2-2 for a rail scale)")
    if accuracy_class in SCALE_CLASSES and (e_kg is None or e_kg < 1):
        raise InvalidInput(f"a class {accuracy_class} scale's certificate needs its "
                           "verification interval e_kg (a whole number of kg, >= 1)")
    if e_kg is not None and e_kg < 1:
        raise InvalidInput(f"e_kg must be >= 1 kg, got {e_kg}")
    if not 0 <= issued_ms < expires_ms or expires_ms - issued_ms > _MAX_VALIDITY_MS:
        raise InvalidInput(f"certificate of {device_id}: it must expire after it is issued "
                           f"and run at most ten years (issued {issued_ms}, expires "
                           f"{expires_ms} ms)")
    if not issuer.strip() or len(issuer) > _TEXT_MAX:
        raise InvalidInput(f"give the issuer (the verification body) in 1-{_TEXT_MAX} "
                           "characters")


def add(store: Store, device_id: str, *, certificate_id: str, accuracy_class: str,
        e_kg: int | None, issued_ms: int, expires_ms: int, issuer: str, actor: str,
        at_ms: int | None = None) -> dict[str, Any]:
    """Record a certificate of ``device_id``; UnknownDevice, InvalidInput, or Conflict when
    that certificate id is already recorded for the device."""
    _check(device_id, certificate_id, accuracy_class, e_kg, issued_ms, expires_ms, issuer)
    now = now_ms() if at_ms is None else at_ms
    row = {"device_id": device_id, "certificate_id": certificate_id,
           "accuracy_class": accuracy_class, "e_kg": e_kg, "issued_ms": issued_ms,
           "expires_ms": expires_ms, "issuer": issuer, "actor": actor, "recorded_ms": now}
    with store.transaction() as conn:
        if not rows.device_exists(conn, device_id):
            raise UnknownDevice(f"device {device_id!r} is not registered: list devices "
                                "with `portwatch device list`")
        if rows.get(conn, device_id, certificate_id) is not None:
            raise Conflict(f"certificate {certificate_id!r} of {device_id} is already "
                           "recorded: a renewal gets a new certificate id")
        try:
            rows.insert(conn, row)
        except sqlite3.IntegrityError as exc:  # another writer recorded it a moment ago
            raise Conflict(f"certificate {certificate_id!r} of {device_id} is already "
                           "recorded") from exc
        body = {k: v for k, v in row.items() if k not in ("actor", "recorded_ms")}
        ledger_log.append_decision(conn, "calibration", actor, body, now)
    return row


def certificate(conn: sqlite3.Connection, device_id: str, time_ms: int) -> dict[str, Any] | None:
    """The certificate covering ``device_id`` at ``time_ms`` (the latest issued), or None."""
    return rows.covering(conn, device_id, time_ms)


def valid_at(conn: sqlite3.Connection, device_id: str, time_ms: int) -> bool:
    """True when a certificate of ``device_id`` covers ``time_ms``."""
    return certificate(conn, device_id, time_ms) is not None


def status_at(conn: sqlite3.Connection, device_id: str, time_ms: int) -> str:
    """``valid``, ``expired`` (it has certificates, none covers the time) or ``untracked``
    (no certificate on file: not judged)."""
    spans = rows.windows(conn, {device_id}).get(device_id)
    if not spans:
        return UNTRACKED
    return VALID if any(start <= time_ms < end for start, end in spans) else EXPIRED


def due(conn: sqlite3.Connection, *, within_days: float | None, now: int,
        device_id: str | None = None) -> list[dict[str, Any]]:
    """Certificates by expiry; with ``within_days``, each device's last certificate when it
    expires within that many days of ``now`` (already expired ones included)."""
    if within_days is None:
        return rows.listing(conn, device_id=device_id)
    if not 0 <= within_days <= 3660:
        raise InvalidInput("due_within_days must be between 0 and 3660")
    return rows.listing(conn, device_id=device_id,
                        expires_before_ms=now + int(within_days * 86_400_000))
