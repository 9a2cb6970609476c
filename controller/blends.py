"""Ore blends: input lots mixed into a new lot, with each input's kg and fraction.

A blend is a ``blend`` decision in the ledger; the ``blends`` and ``blend_inputs`` rows are
what ``blend_rows`` makes of it (the writer here and the audit, controller/audit_blends.py,
use the same fold). The blended lot is declared by the blend (controller.lots) with the
inputs' commodity; the blend's record has origin "blend" and lists the inputs' origins.

The trace follows blends both ways: ``inputs_of`` (backward, down to lots that are no blend)
and ``blends_of`` (forward, every blend that contains a lot, with the lot's fraction of it).
A hold on an input propagates to its blends as a ``blend_input`` hold
(``propagate_hold``), released when no input is held any more (``propagate_release``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.holds import check_lot
from controller.storage import Store, ledger_log, now_ms
from controller.storage import blends as rows
from controller.storage import recall as reads

MAX_INPUTS = 50
MAX_KG = 10_000_000_000  # 10 Mt: far above a vessel's cargo, below float trouble
REASON_MAX = 500
BLEND_ROLES = frozenset({"operator", "admin"})
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BlendInput:
    """One input lot of a blend and the kg of it that went in."""

    lot: str
    kg: int


def check(blend_lot: str, inputs: Sequence[BlendInput], reason: str) -> None:
    """InvalidInput naming the first thing wrong with a blend order (before any read)."""
    check_lot(blend_lot)
    if not 2 <= len(inputs) <= MAX_INPUTS:
        raise InvalidInput(f"a blend has 2-{MAX_INPUTS} input lots; got {len(inputs)}")
    seen: set[str] = set()
    for i in inputs:
        check_lot(i.lot)
        if i.lot == blend_lot:
            raise InvalidInput(f"lot {i.lot!r} cannot be an input of itself")
        if i.lot in seen:
            raise InvalidInput(f"lot {i.lot!r} is listed twice: give its kg once")
        seen.add(i.lot)
        if not 0 < i.kg <= MAX_KG:
            raise InvalidInput(f"kg of input {i.lot!r} must be 1-{MAX_KG}")
    if not reason.strip() or len(reason) > REASON_MAX:
        raise InvalidInput(f"give a reason of 1-{REASON_MAX} characters (it goes to the "
                           "ledger)")


def blend_rows(body: Mapping[str, Any], actor: str,
               time_ms: int) -> tuple[Row, list[Row]]:
    """The ``blends`` row and ``blend_inputs`` rows one ``blend`` decision makes."""
    blend = {"blend_lot": body.get("blend_lot"), "commodity": body.get("commodity"),
             "origin": "blend",
             "origins_json": json.dumps(body.get("origins") or [], ensure_ascii=False),
             "total_kg": body.get("total_kg"), "reason": body.get("reason"), "actor": actor,
             "created_ms": time_ms}
    inputs = [{"blend_lot": body.get("blend_lot"), "input_lot": i.get("lot"),
               "kg": i.get("kg"), "fraction": i.get("fraction")}
              for i in body.get("inputs") or []]
    return blend, inputs


def _input_lots(conn: Any, inputs: Sequence[BlendInput]) -> list[Row]:
    """The inputs' ``lots`` rows; InvalidInput if one is not declared or the commodities
    or kinds differ."""
    from controller import lots as lots_mod  # lots imports holds, which calls back here
    found = []
    for i in inputs:
        lot = lots_mod.get_lot(conn, i.lot)
        if lot is None:
            raise InvalidInput(f"input lot {i.lot!r} is not declared: declare it with "
                               "`portwatch lot declare` first")
        found.append(lot)
    for name in ("commodity", "kind"):
        values = sorted({str(lot[name]) for lot in found})
        if len(values) > 1:
            raise InvalidInput(f"inputs are of different {name} ({', '.join(values)}): "
                               f"blend lots of one {name}")
    return found


def create(store: Store, blend_lot: str, inputs: Sequence[BlendInput], *, reason: str,
           actor: str, time_ms: int | None = None) -> dict[str, Any]:
    """Blend ``inputs`` into the new lot ``blend_lot`` (a ``blend`` decision); its record.

    Conflict when ``blend_lot`` exists already; active holds on inputs carry over to the
    blend as ``blend_input`` holds.
    """
    check(blend_lot, inputs, reason)
    time_ms = time_ms if time_ms is not None else now_ms()
    total = sum(i.kg for i in inputs)
    with store.transaction() as conn:
        # a new lot: so no blend can contain itself, at any depth
        if rows.get_blend(conn, blend_lot) is not None or reads.lot(conn, blend_lot):
            raise Conflict(f"lot {blend_lot!r} exists already: name the blend with a new lot "
                           "id")
        lots = _input_lots(conn, inputs)
        origins = list(dict.fromkeys(str(lot["origin_country"]) for lot in lots))
        major = max(zip(inputs, lots, strict=True), key=lambda p: p[0].kg)[1]
        body = {"blend_lot": blend_lot, "commodity": lots[0]["commodity"], "origins": origins,
                "total_kg": total, "reason": reason,
                "inputs": [{"lot": i.lot, "kg": i.kg, "fraction": i.kg / total}
                           for i in inputs]}
        ledger_log.append_decision(conn, "blend", actor, body, time_ms)
        blend, input_rows = blend_rows(body, actor, time_ms)
        rows.put_blend(conn, blend, input_rows)
        _declare_lot(conn, body, lots[0], major, actor, time_ms)
        if any(_held(conn, i.lot) for i in inputs):
            held = [i.lot for i in inputs if _held(conn, i.lot)]
            from controller import holds as holds_mod
            holds_mod.place_hold(conn, blend_lot, kind="blend_input",
                                 reason=f"input lot(s) {', '.join(held)} on hold",
                                 actor=actor, time_ms=time_ms)
        record = _record(conn, blend_lot)
    assert record is not None
    return record


def _declare_lot(conn: Any, body: Mapping[str, Any], first: Row, major: Row, actor: str,
                 time_ms: int) -> None:
    """Declare the blended lot (controller.lots) as the inputs' commodity, HS code and kind;
    its origin_country is the largest input's (lots need an ISO country; the blend's
    record keeps origin "blend" and every input origin)."""
    from controller import lots as lots_mod
    lots_mod.declare_in(conn, {
        "lot_id": body["blend_lot"], "declaration_no": f"blend {body['blend_lot']}",
        "commodity": first["commodity"], "hs_code": first["hs_code"],
        "origin_country": major["origin_country"], "vessel": "blend",
        "declared_kg": int(body["total_kg"]), "kind": first["kind"]},
        actor=actor, time_ms=time_ms, reason=str(body["reason"]))


def _record(conn: Any, blend_lot: str) -> dict[str, Any] | None:
    blend = rows.get_blend(conn, blend_lot)
    if blend is None:
        return None
    origins = json.loads(blend.pop("origins_json") or "[]")
    return {**blend, "origins": origins,
            "inputs": [{"lot": r["input_lot"], "kg": r["kg"], "fraction": r["fraction"]}
                       for r in rows.inputs(conn, blend_lot)]}


def get(store: Store, blend_lot: str) -> dict[str, Any]:
    """A blend with its inputs; NotFound when ``blend_lot`` is no blend."""
    check_lot(blend_lot)
    record = _record(store.conn, blend_lot)
    if record is None:
        raise NotFound(f"lot {blend_lot!r} is no blend: make one with POST /api/v1/blends or "
                       "`portwatch blend create`")
    return record


def inputs_of(conn: Any, lot: str) -> list[dict[str, Any]]:
    """Every lot that went into ``lot`` through blends, at any depth, with its fraction of
    ``lot`` (a product along the path; summed over paths) and ``depth`` (1: a direct
    input). [] for a lot that is no blend."""
    out: dict[str, dict[str, Any]] = {}
    stack: list[tuple[str, float, int, frozenset[str]]] = [(lot, 1.0, 0, frozenset({lot}))]
    while stack:
        current, share, depth, path = stack.pop()
        for r in rows.inputs(conn, current):
            child = str(r["input_lot"])
            if child in path:  # a cycle cannot be made by create; a bad store must not loop
                continue
            f = share * float(r["fraction"])
            seen = out.setdefault(child, {"lot": child, "fraction": 0.0, "depth": depth + 1})
            seen["fraction"] += f
            seen["depth"] = min(seen["depth"], depth + 1)
            stack.append((child, f, depth + 1, path | {child}))
    return sorted(out.values(), key=lambda x: (x["depth"], x["lot"]))


def blends_of(conn: Any, lot: str) -> list[dict[str, Any]]:
    """Every blend that contains ``lot``, at any depth, with ``lot``'s fraction of it and
    ``depth`` (1: blended directly). [] for a lot never blended."""
    out: dict[str, dict[str, Any]] = {}
    stack: list[tuple[str, float, int, frozenset[str]]] = [(lot, 1.0, 0, frozenset({lot}))]
    while stack:
        current, share, depth, path = stack.pop()
        for r in rows.containing(conn, current):
            parent = str(r["blend_lot"])
            if parent in path:
                continue
            f = share * float(r["fraction"])
            seen = out.setdefault(parent, {"lot": parent, "fraction": 0.0, "depth": depth + 1})
            seen["fraction"] += f
            seen["depth"] = min(seen["depth"], depth + 1)
            stack.append((parent, f, depth + 1, path | {parent}))
    return sorted(out.values(), key=lambda x: (x["depth"], x["lot"]))


def _held(conn: Any, lot: str) -> bool:
    from controller.storage import holds as hold_rows
    return bool(hold_rows.active_holds(conn, lot))


def propagate_hold(conn: Any, lot: str, *, actor: str, time_ms: int) -> list[str]:
    """Hold (kind ``blend_input``) each blend ``lot`` went into directly, inside the
    caller's transaction; those blends. controller.holds.place_hold calls it for every
    hold placed, and again for each blend held, so deeper blends are reached too."""
    from controller import holds as holds_mod  # holds calls back here: imported when used
    held: list[str] = []
    for r in rows.containing(conn, lot):
        blend = str(r["blend_lot"])
        holds_mod.place_hold(conn, blend, kind="blend_input",
                             reason=f"input lot {lot} on hold ({float(r['fraction']):.1%} "
                             "of it)", actor=actor, time_ms=time_ms)
        held.append(blend)
    return held


def propagate_release(conn: Any, lot: str, *, actor: str, time_ms: int) -> list[str]:
    """Release the ``blend_input`` hold of each blend ``lot`` went into directly once none
    of that blend's inputs is held any more, inside the caller's transaction (through
    controller.holds, which calls back here for the blend: deeper blends follow); the
    blends released. controller.holds calls it for every hold released."""
    from controller import holds as holds_mod
    from controller.storage import holds as hold_rows
    freed: list[str] = []
    for r in rows.containing(conn, lot):
        blend = str(r["blend_lot"])
        hold = hold_rows.active_hold(conn, blend, "blend_input")
        if hold is None or any(_held(conn, str(i["input_lot"]))
                               for i in rows.inputs(conn, blend)):
            continue
        # the holds module's own close: the release decision, the lot's status, the cascade
        holds_mod._close(conn, hold, reason=f"no input of {blend} is held now (input lot "
                         f"{lot} released)", actor=actor, now=time_ms)
        freed.append(blend)
    return freed
