"""Lot holds: an officer keeps a lot from leaving (out-gate, rail), and releases it.

A hold has a kind: ``manual`` (an officer's), ``quarantine`` (phytosanitary or lab),
``recall``, ``blend_input`` (an input of this blend is held). At most one active hold per
lot and kind. A hold and its release are ledger decisions (``hold`` / ``release``)
written in the same transaction as the row; the first hold on a declared lot makes it
``held`` and the release of its last hold returns it to the status it had
(controller/lots.py). A hold on an input of a blend holds the blend too
(controller/blends.py ``propagate_hold``).

Release rules: a ``quarantine`` hold is released only by two different officers with the
``release_officer`` role, each approval a ``release_approval`` decision (four eyes: an
admin alone is not enough); other kinds by one admin, as before.
"""

from __future__ import annotations

import importlib
import re
import sqlite3
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.storage import Store, ledger_log, now_ms
from controller.storage import holds as rows

# a lot id as customs and the port write it: letters, digits and - _ . / (no spaces)
LOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
REASON_MAX = 500
KINDS = ("manual", "quarantine", "recall", "blend_input")
FOUR_EYES_KINDS = frozenset({"quarantine"})
APPROVALS_NEEDED = 2
HOLD_ROLES = frozenset({"operator", "admin"})  # any officer may stop cargo: fails safe
RELEASE_ROLES = frozenset({"admin"})  # letting held cargo go needs more authority
APPROVE_ROLES = frozenset({"release_officer"})  # the four eyes of a quarantine release


def check_lot(lot: str) -> str:
    """``lot`` if it is a usable lot id, else InvalidInput saying what is allowed."""
    if not re.fullmatch(LOT_PATTERN, lot):
        raise InvalidInput(f"lot {lot[:80]!r}: use 1-64 letters, digits, '.', '_', '/' or "
                           "'-', starting with a letter or digit")
    return lot


def check_kind(kind: str) -> str:
    """``kind`` if it is a hold kind, else InvalidInput naming them."""
    if kind not in KINDS:
        raise InvalidInput(f"hold kind {kind!r}: use one of {', '.join(KINDS)}")
    return kind


def _check_reason(reason: str) -> str:
    if not reason.strip() or len(reason) > REASON_MAX:
        raise InvalidInput(f"give a reason of 1-{REASON_MAX} characters (it goes to the "
                           "ledger)")
    return reason


def _module(name: str) -> Any:
    # lots and blends import this module (check_lot): imported when used, not at import
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def place_hold(conn: sqlite3.Connection, lot: str, *, kind: str, reason: str, actor: str,
               time_ms: int) -> int:
    """Hold ``lot`` inside the caller's transaction; the hold's id. Idempotent: an active
    hold of this kind on the lot is returned as it is. The lot becomes ``held`` (when
    declared) and the blends it is an input of get a ``blend_input`` hold."""
    check_lot(lot)
    check_kind(kind)
    _check_reason(reason)
    current = rows.active_hold(conn, lot, kind)
    if current is not None:
        return int(current["id"])
    hold_id = rows.insert_hold(conn, lot, reason, actor, time_ms, kind)
    ledger_log.append_decision(conn, "hold", actor, {
        "hold_id": hold_id, "lot": lot, "reason": reason, "kind": kind}, time_ms)
    lots = _module("controller.lots")
    if lots is not None:
        lots.mark_held(conn, lot, reason=f"hold {hold_id} ({kind}): {reason}", actor=actor,
                       time_ms=time_ms)
    blends = _module("controller.blends")
    propagate = getattr(blends, "propagate_hold", None)
    if propagate is not None:
        propagate(conn, lot, actor=actor, time_ms=time_ms)
    return hold_id


def hold(store: Store, lot: str, *, reason: str, actor: str, at_ms: int | None = None,
         kind: str = "manual") -> dict[str, Any]:
    """Put ``lot`` on hold; Conflict if it already has an active hold of this kind."""
    check_lot(lot)
    check_kind(kind)
    _check_reason(reason)
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        current = rows.active_hold(conn, lot, kind)
        if current is not None:
            raise Conflict(f"lot {lot!r} is already on hold ({kind}) since "
                           f"{current['held_ms']} ms by {current['actor']} "
                           f"({current['reason']}): release it first")
        try:
            hold_id = place_hold(conn, lot, kind=kind, reason=reason, actor=actor,
                                 time_ms=now)
        except sqlite3.IntegrityError as exc:  # another writer held it a moment ago
            raise Conflict(f"lot {lot!r} is already on hold: list holds to see by whom") \
                from exc
        found = rows.get_hold(conn, hold_id)
    assert found is not None
    return found


def _close(conn: sqlite3.Connection, h: dict[str, Any], *, reason: str, actor: str,
           now: int, approved_by: list[str] | None = None) -> None:
    rows.release(conn, h["id"], actor, reason, now)
    body: dict[str, Any] = {"hold_id": h["id"], "lot": h["lot"], "reason": reason,
                            "held_ms": h["held_ms"], "held_by": h["actor"], "kind": h["kind"]}
    if approved_by is not None:
        body["approved_by"] = approved_by
    ledger_log.append_decision(conn, "release", actor, body, now)
    lots = _module("controller.lots")
    if lots is not None:
        lots.unmark_held(conn, h["lot"], reason=f"hold {h['id']} released: {reason}",
                         actor=actor, time_ms=now)
    blends = _module("controller.blends")
    propagate = getattr(blends, "propagate_release", None)
    if propagate is not None:
        propagate(conn, h["lot"], actor=actor, time_ms=now)


def _pick(conn: sqlite3.Connection, lot: str, kind: str | None) -> dict[str, Any]:
    active = rows.active_holds(conn, lot)
    if kind is not None:
        active = [h for h in active if h["kind"] == kind]
    if not active:
        raise NotFound(f"lot {lot!r} is not on {kind + ' ' if kind else ''}hold: list holds "
                       "with GET /api/v1/holds or `portwatch lot holds`")
    if len(active) > 1:
        raise Conflict(f"lot {lot!r} has {len(active)} active holds "
                       f"({', '.join(h['kind'] for h in active)}): say which kind to release")
    return active[0]


def release(store: Store, lot: str, *, reason: str, actor: str, at_ms: int | None = None,
            kind: str | None = None) -> dict[str, Any]:
    """Release the active hold on ``lot`` (of ``kind`` when it has several); NotFound
    when it is not on hold; Conflict for a quarantine hold (two release officers approve
    it: ``approve_release``)."""
    check_lot(lot)
    _check_reason(reason)
    if kind is not None:
        check_kind(kind)
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        current = _pick(conn, lot, kind)
        if current["kind"] in FOUR_EYES_KINDS:
            raise Conflict(f"hold {current['id']} on lot {lot!r} is a {current['kind']} hold: "
                           f"{APPROVALS_NEEDED} different release officers approve its "
                           f"release (POST /api/v1/holds/{current['id']}/approve or "
                           f"`portwatch lot approve-release {current['id']}`)")
        _close(conn, current, reason=reason, actor=actor, now=now)
        found = rows.get_hold(conn, current["id"])
    assert found is not None
    return found


def approve_release(store: Store, hold_id: int, *, reason: str, officer: str,
                    at_ms: int | None = None) -> dict[str, Any]:
    """One release officer's approval of a four-eyes hold's release (a
    ``release_approval`` decision); the second different officer's releases it.

    The hold with ``approvals`` (officers so far) and ``needed`` (how many more). NotFound
    for an unknown hold; Conflict for a released hold, a kind that needs no approvals, or
    the same officer twice.
    """
    _check_reason(reason)
    now = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        h = rows.get_hold(conn, hold_id)
        if h is None:
            raise NotFound(f"no hold {hold_id}: list holds with GET /api/v1/holds or "
                           "`portwatch lot holds`")
        if h["released_ms"] is not None:
            raise Conflict(f"hold {hold_id} was released at {h['released_ms']} ms by "
                           f"{h['released_by']}: nothing to approve")
        if h["kind"] not in FOUR_EYES_KINDS:
            raise Conflict(f"hold {hold_id} is a {h['kind']} hold: an admin releases it "
                           f"(POST /api/v1/lots/{h['lot']}/release), no approvals needed")
        before = [a["officer"] for a in rows.approvals(conn, hold_id)]
        if officer in before:
            raise Conflict(f"{officer} already approved the release of hold {hold_id}: a "
                           "different release officer must give the second approval")
        rows.add_approval(conn, hold_id, officer, reason, now)
        officers = [*before, officer]
        ledger_log.append_decision(conn, "release_approval", officer, {
            "hold_id": hold_id, "lot": h["lot"], "reason": reason,
            "approval": len(officers), "needed": APPROVALS_NEEDED}, now)
        if len(officers) >= APPROVALS_NEEDED:
            _close(conn, h, reason=reason, actor=officer, now=now, approved_by=officers)
        found = rows.get_hold(conn, hold_id)
    assert found is not None
    return {**found, "approvals": officers,
            "needed": max(0, APPROVALS_NEEDED - len(officers))}


def with_approvals(store: Store, h: dict[str, Any]) -> dict[str, Any]:
    """A hold's row with its approvals and how many more a release needs."""
    officers = [a["officer"] for a in rows.approvals(store.conn, h["id"])]
    needed = 0 if h["released_ms"] is not None or h["kind"] not in FOUR_EYES_KINDS \
        else APPROVALS_NEEDED - len(officers)
    return {**h, "approvals": officers, "needed": needed}


def list_holds(store: Store, *, active: bool | None = True, lot: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
    """Holds, newest first (see ``controller.storage.holds.list_holds``)."""
    return rows.list_holds(store.conn, active=active, lot=lot, limit=limit)
