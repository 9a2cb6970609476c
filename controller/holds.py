"""Lot holds: an officer keeps a lot from leaving through the out-gate, and releases it.

A hold and its release are ledger decisions (``hold`` / ``release``) written in the same
transaction as the row. The out-gate decision (controller/gate.py) denies the exit of a
truck whose order's lot is on hold. This is the minimal lifecycle (held, released); a
lot's full lifecycle comes later.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.storage import Store, ledger_log, now_ms
from controller.storage import holds as rows

# a lot id as customs and the port write it: letters, digits and - _ . / (no spaces)
LOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
REASON_MAX = 500
HOLD_ROLES = frozenset({"operator", "admin"})  # any officer may stop cargo: fails safe
RELEASE_ROLES = frozenset({"admin"})  # letting held cargo go needs more authority


def check_lot(lot: str) -> str:
    """``lot`` if it is a usable lot id, else InvalidInput saying what is allowed."""
    if not re.fullmatch(LOT_PATTERN, lot):
        raise InvalidInput(f"lot {lot[:80]!r}: use 1-64 letters, digits, '.', '_', '/' or "
                           "'-', starting with a letter or digit")
    return lot


def _check_reason(reason: str) -> str:
    if not reason.strip() or len(reason) > REASON_MAX:
        raise InvalidInput(f"give a reason of 1-{REASON_MAX} characters (it goes to the "
                           "ledger)")
    return reason


def hold(store: Store, lot: str, *, reason: str, actor: str,
         at_ms: int | None = None) -> dict[str, Any]:
    """Put ``lot`` on hold; Conflict if it already is (release it first or leave it)."""
    check_lot(lot)
    _check_reason(reason)
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        current = rows.active_hold(conn, lot)
        if current is not None:
            raise Conflict(f"lot {lot!r} is already on hold since {current['held_ms']} ms "
                           f"by {current['actor']} ({current['reason']}): release it first")
        try:
            hold_id = rows.insert_hold(conn, lot, reason, actor, now)
        except sqlite3.IntegrityError as exc:  # another writer held it a moment ago
            raise Conflict(f"lot {lot!r} is already on hold: list holds to see by whom") \
                from exc
        ledger_log.append_decision(conn, "hold", actor, {
            "hold_id": hold_id, "lot": lot, "reason": reason}, now)
        found = rows.get_hold(conn, hold_id)
    assert found is not None
    return found


def release(store: Store, lot: str, *, reason: str, actor: str,
            at_ms: int | None = None) -> dict[str, Any]:
    """Release the active hold on ``lot``; NotFound when it is not on hold."""
    check_lot(lot)
    _check_reason(reason)
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        current = rows.active_hold(conn, lot)
        if current is None:
            raise NotFound(f"lot {lot!r} is not on hold: list holds with GET /api/v1/holds "
                           "or `portwatch lot holds`")
        rows.release(conn, current["id"], actor, reason, now)
        ledger_log.append_decision(conn, "release", actor, {
            "hold_id": current["id"], "lot": lot, "reason": reason,
            "held_ms": current["held_ms"], "held_by": current["actor"]}, now)
        found = rows.get_hold(conn, current["id"])
    assert found is not None
    return found


def list_holds(store: Store, *, active: bool | None = True, lot: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Holds, newest first (see ``controller.storage.holds.list_holds``)."""
    return rows.list_holds(store.conn, active=active, lot=lot, limit=limit)
