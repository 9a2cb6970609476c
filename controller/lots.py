"""Lots from vessel to release: declared, in anchorage quarantine, unloading, stored,
released, departed; ``held`` while a hold (controller/holds.py) keeps them.

Every change is a ``lot`` ledger decision written in the same transaction as the rows it
makes (the fold in controller/projections/lots.py), so ``lots`` and ``lot_events`` can be
rebuilt from the log (controller/audit_lots.py). ``held`` is entered and left only through
holds: placing the first hold makes a lot ``held``, releasing the last one returns it to
the status it had.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import pycountry

from controller.errors import Conflict, InvalidInput, NotFound
from controller.holds import check_lot
from controller.projections.lots import LOT_FIELDS, event_row, lot_row
from controller.storage import Store, ledger_log, now_ms
from controller.storage import holds as hold_rows
from controller.storage import lots as rows
from controller.storage import orders as order_rows

STATUSES = ("declared", "anchorage_quarantine", "unloading", "stored", "released", "held",
            "departed")
# what an officer may move a lot to from each status; ``held`` comes and goes with holds
NEXT: dict[str, tuple[str, ...]] = {
    "declared": ("anchorage_quarantine", "unloading"),
    "anchorage_quarantine": ("unloading",),
    "unloading": ("stored",),
    "stored": ("released",),
    "released": ("departed",),
    "held": (),
    "departed": (),
}
KINDS = ("grain", "ore", "other")
HS_PATTERN = r"^[0-9]{6,10}$"
TEXT_MAX = 100
REASON_MAX = 500
DECLARED_KG_MAX = 10_000_000_000  # 10 Mt: more than any bulk carrier holds
# who may declare lots and move them along (the same officers who place holds)
LOT_ROLES = frozenset({"operator", "admin"})


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > TEXT_MAX \
            or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidInput(f"{name}: give 1-{TEXT_MAX} printable characters")
    return value


def check_country(code: Any) -> str:
    """``code`` if it is an ISO 3166-1 alpha-2 country code (upper case), else InvalidInput."""
    if not isinstance(code, str) or not re.fullmatch(r"[A-Z]{2}", code) \
            or pycountry.countries.get(alpha_2=code) is None:
        raise InvalidInput(f"origin_country {str(code)[:20]!r}: give an ISO 3166-1 alpha-2 "
                           "code in capitals, e.g. UA, BR, AU")
    return code


def check_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The declaration's fields checked, in LOT_FIELDS order; InvalidInput naming the first
    bad one."""
    check_lot(str(fields.get("lot_id", "")))
    _text("declaration_no", fields.get("declaration_no"))
    _text("commodity", fields.get("commodity"))
    _text("vessel", fields.get("vessel"))
    hs = fields.get("hs_code")
    if not isinstance(hs, str) or not re.fullmatch(HS_PATTERN, hs):
        raise InvalidInput(f"hs_code {str(hs)[:20]!r}: give the 6-10 digit HS code, "
                           "e.g. 100199")
    check_country(fields.get("origin_country"))
    return _kg_kind({f: fields.get(f) for f in LOT_FIELDS})


def _kg_kind(fields: dict[str, Any]) -> dict[str, Any]:
    kg = fields.get("declared_kg")
    if isinstance(kg, bool) or not isinstance(kg, int) or not 0 < kg <= DECLARED_KG_MAX:
        raise InvalidInput(f"declared_kg: give a whole number of kg, 1 to {DECLARED_KG_MAX}")
    if fields.get("kind") not in KINDS:
        raise InvalidInput(f"kind {fields.get('kind')!r}: use one of {', '.join(KINDS)}")
    return fields


def _reason(reason: str) -> str:
    if not reason.strip() or len(reason) > REASON_MAX:
        raise InvalidInput(f"give a reason of 1-{REASON_MAX} characters (it goes to the "
                           "ledger)")
    return reason


def _write(conn: sqlite3.Connection, current: dict[str, Any] | None, body: dict[str, Any],
           actor: str, time_ms: int) -> dict[str, Any]:
    # the decision first, then the rows its fold makes: the audit replays the same fold
    idx = ledger_log.append_decision(conn, "lot", actor, body, time_ms)
    row = lot_row(current, body, actor, time_ms)
    assert row is not None
    rows.put_lot(conn, row)
    rows.insert_event(conn, event_row(idx, body, actor, time_ms))
    return row


def declare_in(conn: sqlite3.Connection, fields: dict[str, Any], *, actor: str,
               time_ms: int, reason: str = "declared") -> dict[str, Any]:
    """Declare a lot inside the caller's transaction (``held`` at once when a hold on its
    id is active already); Conflict if its id is taken."""
    checked = check_fields(fields)
    existing = rows.get_lot(conn, checked["lot_id"])
    if existing is not None:
        raise Conflict(f"lot {checked['lot_id']!r} is already declared (declaration "
                       f"{existing['declaration_no']}, status {existing['status']}): pick "
                       "another id or change its status")
    row = _write(conn, None, {"action": "declare", "lot": checked, "reason": reason},
                 actor, time_ms)
    active = hold_rows.active_holds(conn, checked["lot_id"])
    if active:  # held before it was declared: it is held from the start
        row = mark_held(conn, checked["lot_id"], reason=f"hold {active[0]['id']} "
                        f"({active[0]['kind']}) placed before the declaration", actor=actor,
                        time_ms=time_ms) or row
    return row


def declare(store: Store, fields: dict[str, Any], *, actor: str,
            at_ms: int | None = None) -> dict[str, Any]:
    """Declare a lot (status ``declared``); its row."""
    with store.transaction() as conn:
        return declare_in(conn, fields, actor=actor,
                          time_ms=now_ms() if at_ms is None else at_ms)


def get_lot(conn: sqlite3.Connection, lot_id: str) -> dict[str, Any] | None:
    """A lot's row (``lots`` columns), or None when it was never declared."""
    return rows.get_lot(conn, lot_id)


def lot_unloading_at(conn: sqlite3.Connection, time_ms: int) -> str | None:
    """The lot whose status was ``unloading`` at ``time_ms``; if several, the latest to
    start unloading; None when none was."""
    return rows.unloading_at(conn, time_ms)


def _set(conn: sqlite3.Connection, current: dict[str, Any], status: str, *, reason: str,
         actor: str, time_ms: int, released_before_test: bool | None) -> dict[str, Any]:
    body: dict[str, Any] = {"action": "status", "lot_id": current["lot_id"],
                            "status": status, "reason": reason}
    if released_before_test is not None:
        body["released_before_test"] = bool(released_before_test)
    return _write(conn, current, body, actor, time_ms)


def set_status(conn: sqlite3.Connection, lot_id: str, status: str, *, reason: str,
               actor: str, time_ms: int,
               released_before_test: bool | None = None) -> dict[str, Any]:
    """Move a lot to ``status`` inside the caller's transaction (a ``lot`` decision); the
    new row.

    NotFound for an undeclared lot, InvalidInput for an unknown status, Conflict (naming
    the possible statuses) for a move its current status does not allow. ``held`` is
    reached and left through holds (controller/holds.py), not here.
    """
    _reason(reason)
    if status not in STATUSES:
        raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")
    current = rows.get_lot(conn, lot_id)
    if current is None:
        raise NotFound(f"lot {lot_id!r} is not declared: declare it first "
                       "(POST /api/v1/lots or `portwatch lot declare`)")
    allowed = NEXT[current["status"]]
    if status not in allowed:
        if current["status"] == "held":
            hint = "it is held: release its holds first (`portwatch lot holds --lot ...`)"
        elif status == "held":
            hint = "place a hold instead (`portwatch lot hold`)"
        else:
            hint = f"possible: {', '.join(allowed) or 'none (it is final)'}"
        raise Conflict(f"lot {lot_id!r} is {current['status']}, it cannot become {status}: "
                       f"{hint}")
    return _set(conn, current, status, reason=reason, actor=actor, time_ms=time_ms,
                released_before_test=released_before_test)


def change_status(store: Store, lot_id: str, status: str, *, reason: str, actor: str,
                  at_ms: int | None = None,
                  released_before_test: bool = False) -> dict[str, Any]:
    """``set_status`` in its own transaction (the API and the CLI).
    ``released_before_test``: an ore lot released before its lab result (a failing result
    later recalls it: controller/recall.py); InvalidInput for another status or kind."""
    with store.transaction() as conn:
        if released_before_test:
            current = rows.get_lot(conn, lot_id)
            if status != "released" or (current is not None and current["kind"] != "ore"):
                raise InvalidInput("released_before_test is for an ore lot going to "
                                   "released: release other lots after their lab result")
        return set_status(conn, lot_id, status, reason=reason, actor=actor,
                          time_ms=now_ms() if at_ms is None else at_ms,
                          released_before_test=True if released_before_test else None)


def mark_held(conn: sqlite3.Connection, lot_id: str, *, reason: str, actor: str,
              time_ms: int) -> dict[str, Any] | None:
    """A hold was placed: a declared lot that is not held or departed becomes ``held``
    (the status it left is kept). None when nothing changes (undeclared, already held,
    departed: a recall of cargo that left changes no status here)."""
    current = rows.get_lot(conn, lot_id)
    if current is None or current["status"] in ("held", "departed"):
        return None
    return _set(conn, current, "held", reason=reason, actor=actor, time_ms=time_ms,
                released_before_test=None)


def unmark_held(conn: sqlite3.Connection, lot_id: str, *, reason: str, actor: str,
                time_ms: int) -> dict[str, Any] | None:
    """The last active hold of a lot was released: back to the status the hold found.
    None when the lot is undeclared, not held, or still has an active hold."""
    current = rows.get_lot(conn, lot_id)
    if current is None or current["status"] != "held" or hold_rows.active_holds(conn, lot_id):
        return None
    return _set(conn, current, current["held_from"] or "declared", reason=reason,
                actor=actor, time_ms=time_ms, released_before_test=None)


def list_lots(store: Store, *, status: str | None = None, vessel: str | None = None,
              kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Lots, newest first, filtered by status, vessel and kind."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status {status!r}: use one of {', '.join(STATUSES)}")
    return rows.list_lots(store.conn, status=status, vessel=vessel, kind=kind, limit=limit)


def show(store: Store, lot_id: str) -> dict[str, Any]:
    """A lot with its history, holds (all, newest first) and transfer orders; NotFound."""
    conn = store.conn
    lot = rows.get_lot(conn, check_lot(lot_id))
    if lot is None:
        raise NotFound(f"lot {lot_id!r} is not declared: list lots with GET /api/v1/lots "
                       "or `portwatch lot list`")
    return {**lot, "next": list(NEXT[lot["status"]]), "history": rows.events(conn, lot_id),
            "holds": hold_rows.list_holds(conn, active=None, lot=lot_id, limit=1000),
            "orders": order_rows.list_orders(conn, lot=lot_id, limit=1000)}
