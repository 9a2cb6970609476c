"""Lots and their status history as projections of the ledger's ``lot`` decisions.

A lot is declared by the controller's users, not by a device: each change is a ``lot``
decision, and the rows of ``lots`` and ``lot_events`` are what folding those decisions in
log order makes. The writer (controller/lots.py) and the audit (controller/audit_lots.py)
use this same fold, so a row can always be rebuilt from the log.

``lot`` decision bodies: ``{"action": "declare", "lot": {...LOT_FIELDS}, "reason"}`` and
``{"action": "status", "lot_id", "status", "reason"[, "released_before_test"]}``. A lot
going to ``held`` remembers the status it left (``held_from``); leaving ``held`` forgets it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = dict[str, Any]

LOT_FIELDS = ("lot_id", "declaration_no", "commodity", "hs_code", "origin_country", "vessel",
              "declared_kg", "kind")
LOT_COLUMNS = (*LOT_FIELDS, "status", "created_ms", "updated_ms", "released_before_test",
               "held_from", "created_by")
EVENT_COLUMNS = ("lot_id", "idx", "status", "reason", "actor", "time_ms")


def lot_id_of(body: Mapping[str, Any]) -> str:
    """The lot a ``lot`` decision is about."""
    return str(body.get("lot_id") or (body.get("lot") or {}).get("lot_id"))


def lot_row(current: Row | None, body: Mapping[str, Any], actor: str,
            time_ms: int) -> Row | None:
    """The ``lots`` row after one ``lot`` decision (None: the decision changes none)."""
    action = body.get("action")
    if action == "declare" and current is None:
        fields = body.get("lot") or {}
        return {**{c: None for c in LOT_COLUMNS}, **{f: fields.get(f) for f in LOT_FIELDS},
                "status": "declared", "created_ms": time_ms, "updated_ms": time_ms,
                "released_before_test": 0, "created_by": actor}
    if action == "status" and current is not None:
        status = body.get("status")
        row = {**current, "status": status, "updated_ms": time_ms}
        if status == "held" and current["status"] != "held":
            row["held_from"] = current["status"]
        elif status != "held":
            row["held_from"] = None
        if "released_before_test" in body:
            row["released_before_test"] = int(bool(body["released_before_test"]))
        return row
    return None


def event_row(idx: int, body: Mapping[str, Any], actor: str, time_ms: int) -> Row:
    """The ``lot_events`` row of one ``lot`` decision (every one makes one)."""
    status = "declared" if body.get("action") == "declare" else body.get("status")
    return {"lot_id": lot_id_of(body), "idx": idx, "status": status,
            "reason": body.get("reason"), "actor": actor, "time_ms": time_ms}


class Book:
    """``lots`` and ``lot_events`` rebuilt in memory by folding decisions in log order."""

    def __init__(self) -> None:
        self.lots: dict[str, Row] = {}
        self.events: dict[int, Row] = {}

    def apply(self, idx: int, kind: str, actor: str, body: Mapping[str, Any],
              time_ms: int) -> None:
        """Fold one decision (kinds other than ``lot`` are ignored)."""
        if kind != "lot":
            return
        lid = lot_id_of(body)
        row = lot_row(self.lots.get(lid), body, actor, time_ms)
        if row is not None:
            self.lots[lid] = row
            self.events[idx] = event_row(idx, body, actor, time_ms)
