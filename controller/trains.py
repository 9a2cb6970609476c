"""Train manifests at the rail yard, their match to the reader's passages, and release.

A manifest (``declare``) names a train, the rail reader that will see it and the
direction, and its cars in order, each with its lot and destination (and, optionally, the
weight loaded into it). Every change is a ``train`` ledger decision written in the
transaction that changes ``trains`` / ``train_cars``: ``manifest``, ``passage`` (the
controller matched a passage to it), ``release`` (dispatched).

``attach`` matches each ``passage`` fact, before the rules run, to the oldest open
manifest of that reader and direction, and adds to the passage body what the pure rule
(controller/supervision/rules/rail_reconcile.py) compares: ``train_id``, ``manifest``
(``[initial, number, lot, declared_kg]`` per car) and ``held_lots`` (the manifest's lots
with an active hold at that moment). A passage with the first-axle time and reader train
id of an earlier one of that reader (the same train sent again under a new seq) matches
nothing and is marked ``duplicate_of_seq``: the rule judges it not again.

``release`` refuses (Conflict, HTTP 409) a train carrying a lot that is on hold, naming
the lots: a held lot's cars must not leave by rail, as its trucks may not at the out-gate.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.facts import Fact
from controller.storage import Store, ledger_log, now_ms
from controller.storage import rail as rows

DECISION = "train"
TRAIN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
INITIAL_PATTERN = r"^[A-Z]{1,4}$"
DIRECTIONS = ("in", "out")
MAX_CARS = 120
STATUSES = ("open", "passed", "released", "cancelled")


def check_manifest(fields: dict[str, Any]) -> dict[str, Any]:
    """A manifest's fields checked and normalised; InvalidInput says what is wrong."""
    from controller import holds

    tid = fields.get("train_id")
    if not isinstance(tid, str) or not re.match(TRAIN_ID_PATTERN, tid):
        raise InvalidInput("train_id must be 1-40 letters, digits, '.', '_' or '-'")
    reader = fields.get("reader")
    if not isinstance(reader, str) or not reader:
        raise InvalidInput("reader must be the rail reader's device id (e.g. rail-1)")
    direction = fields.get("direction", "out")
    if direction not in DIRECTIONS:
        raise InvalidInput("direction must be 'in' or 'out'")
    cars = fields.get("cars")
    if not isinstance(cars, list) or not 1 <= len(cars) <= MAX_CARS:
        raise InvalidInput(f"cars must list 1-{MAX_CARS} cars in train order")
    out_cars: list[dict[str, Any]] = []
    seen: set[tuple[str, int]] = set()
    for i, car in enumerate(cars):
        if not isinstance(car, dict):
            raise InvalidInput(f"car {i}: an object with initial, number, lot, destination")
        initial = str(car.get("initial", "")).upper()
        number = car.get("number")
        if not re.match(INITIAL_PATTERN, initial) or type(number) is not int \
                or not 0 <= number <= 999999:
            raise InvalidInput(f"car {i}: initial is 1-4 letters and number 0-999999 "
                               "(as on the car's AEI tag)")
        if (initial, number) in seen:
            raise InvalidInput(f"car {i}: {initial} {number} is listed twice")
        seen.add((initial, number))
        lot = car.get("lot")
        if lot is not None:
            try:
                lot = holds.check_lot(lot)
            except ValueError as exc:
                raise InvalidInput(f"car {i}: {exc}") from None
        dest = car.get("destination")
        if dest is not None and (not isinstance(dest, str) or not 0 < len(dest) <= 64):
            raise InvalidInput(f"car {i}: destination is a string of 1-64 characters")
        kg = car.get("declared_kg")
        if kg is not None and (type(kg) is not int or not 0 < kg <= 200_000):
            raise InvalidInput(f"car {i}: declared_kg is the weight loaded, 1-200000 kg")
        out_cars.append({"initial": initial, "number": number, "lot": lot,
                         "destination": dest, "declared_kg": kg})
    note = fields.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 200):
        raise InvalidInput("note is a string of at most 200 characters")
    return {"train_id": tid, "reader": reader, "direction": direction, "cars": out_cars,
            "note": note}


def declare(store: Store, fields: dict[str, Any], *, actor: str,
            at_ms: int | None = None) -> dict[str, Any]:
    """Record a train manifest (status ``open``); Conflict when its id is taken."""
    m = check_manifest(fields)
    t = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        if rows.get_train(conn, m["train_id"]) is not None:
            raise Conflict(f"train {m['train_id']!r} already has a manifest: pick another id")
        ledger_log.append_decision(conn, DECISION, actor, {"action": "manifest", **m}, t)
        rows.put_train(conn, {"train_id": m["train_id"], "reader": m["reader"],
                              "direction": m["direction"], "status": "open",
                              "note": m["note"], "actor": actor, "created_ms": t,
                              "updated_ms": t})
        rows.insert_cars(conn, m["train_id"], m["cars"])
        return _show(conn, m["train_id"])


def held_lots(conn: sqlite3.Connection, lots: Sequence[str | None]) -> list[str]:
    """The lots among ``lots`` with an active hold, sorted."""
    from controller.storage import holds as hold_rows

    return sorted({lot for lot in lots if lot and hold_rows.active_holds(conn, lot)})


def _show(conn: sqlite3.Connection, train_id: str) -> dict[str, Any]:
    t = rows.get_train(conn, train_id)
    if t is None:
        raise NotFound(f"no train {train_id!r}: see portwatch train list")
    cars = rows.train_cars(conn, train_id)
    out = {**t, "cars": [{k: c[k] for k in ("initial", "number", "lot", "destination",
                                             "declared_kg")} for c in cars],
           "held_lots": held_lots(conn, [c["lot"] for c in cars]), "passage": None}
    if t["passage_device"] is not None:
        p = rows.passage(conn, t["passage_device"], int(t["passage_seq"]))
        if p is not None:
            p["reads"] = rows.passage_rows(conn, t["passage_device"], int(t["passage_seq"]))
        out["passage"] = p
    return out


def show(store: Store, train_id: str) -> dict[str, Any]:
    """A manifest with its cars, held lots and matched passage; NotFound if unknown."""
    return _show(store.conn, train_id)


def list_trains(store: Store, *, status: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Manifests newest first."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    return rows.list_trains(store.conn, status=status, limit=limit)


def release(store: Store, train_id: str, *, actor: str, reason: str = "dispatched",
            at_ms: int | None = None) -> dict[str, Any]:
    """Dispatch a train. Conflict naming the held lots when a lot on it is on hold (lift
    the holds first: portwatch lot release), or when it was already released."""
    t = now_ms() if at_ms is None else at_ms
    with store.transaction() as conn:
        row = rows.get_train(conn, train_id)
        if row is None:
            raise NotFound(f"no train {train_id!r}: see portwatch train list")
        if row["status"] in ("released", "cancelled"):
            raise Conflict(f"train {train_id!r} is already {row['status']}")
        held = held_lots(conn, [c["lot"] for c in rows.train_cars(conn, train_id)])
        if held:
            raise Conflict(f"train {train_id!r} carries lots on hold: {', '.join(held)}; "
                           "it cannot be released until they are (portwatch lot holds)")
        ledger_log.append_decision(conn, DECISION, actor, {
            "action": "release", "train_id": train_id, "reason": reason}, t)
        rows.put_train(conn, {**row, "status": "released", "updated_ms": t,
                              "released_ms": t, "released_by": actor})
        return _show(conn, train_id)


def attach(conn: sqlite3.Connection, facts: Sequence[Fact]) -> list[Fact]:
    """Match every ``passage`` fact to its manifest (others pass as they are)."""
    return [_attach(conn, f) if f.kind == "passage" else f for f in facts]


def _attach(conn: sqlite3.Connection, fact: Fact) -> Fact:
    b = fact.body
    dup = rows.earlier_passage(conn, fact.device_id, fact.seq, int(b["started_ts"]),
                               b.get("train"))
    if dup is not None:  # the same train sent again: matched (and judged) once
        return dataclasses.replace(fact, body={**b, "train_id": None, "manifest": None,
                                               "held_lots": [], "duplicate_of_seq": dup})
    train = rows.open_train(conn, fact.device_id, str(b["direction"]))
    if train is None:
        return dataclasses.replace(fact, body={**b, "train_id": None, "manifest": None,
                                               "held_lots": []})
    tid = train["train_id"]
    cars = rows.train_cars(conn, tid)
    ledger_log.append_decision(conn, DECISION, "controller", {
        "action": "passage", "train_id": tid, "device_id": fact.device_id,
        "seq": fact.seq}, fact.received_ms)
    rows.put_train(conn, {**train, "status": "passed", "updated_ms": fact.received_ms,
                          "passage_device": fact.device_id, "passage_seq": fact.seq})
    manifest = [[c["initial"], c["number"], c["lot"], c["declared_kg"]] for c in cars]
    return dataclasses.replace(fact, body={
        **b, "train_id": tid, "manifest": manifest,
        "held_lots": held_lots(conn, [c["lot"] for c in cars])})
