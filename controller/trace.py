"""Backward and forward trace of cargo, each step with the ledger entries that prove it.

Backward: from a truck trip, a rail car, a weighing (``device:seq``) or a lab sample
(``device:seq``) to its lot, the lot's vessel and declaration, and through blends to every
input lot. Forward: from a lot to every trip and rail car that carried it (destination,
weight, time), and on through every blend it went into.

Every node carries ``proofs``: for each ledger entry behind it (the ``lot``, ``order``,
``trip``, ``gate``, ``hold``/``release``, ``blend`` decisions and the device messages of
weighings and samples) its leaf index, its leaf hash (hex) and an RFC 9162 inclusion proof
(controller/ledger/proofs.py) against the latest signed checkpoint holding it, or against
the whole ledger, with ``checkpoint`` null, when no checkpoint covers it yet.

Lots, samples, rail passages and blends come from tables other modules build; a missing
table or row gives a node with ``missing`` saying what is not recorded, never an error.
"""

from __future__ import annotations

import base64
import sqlite3
from collections import defaultdict
from typing import Any

from controller.errors import InvalidInput, NotFound
from controller.ledger import checkpoint as cp_mod
from controller.ledger import entries as entries_mod
from controller.ledger import proofs
from controller.storage import ledger_log
from controller.storage import trace_reads as reads

Node = dict[str, Any]

# decisions whose bodies name a lot, order, trip or weighing
_KINDS = ("lot", "order", "trip", "gate", "hold", "release", "blend", "sample", "sample_lot",
          "passage", "train")
_MAX_DEPTH = 16  # blends of blends: deeper than any real port, and a cycle cannot loop


class LedgerIndex:
    """Where each lot, order, trip and weighing is named in the ledger's decisions (one
    scan per trace), and the inclusion proofs of those entries."""

    def __init__(self, conn: sqlite3.Connection, *, paths: bool = True) -> None:
        self.conn = conn
        self.paths = paths  # False: leaf index, hash and kind only (a lighter answer)
        self.by_key: dict[tuple[str, str], list[int]] = defaultdict(list)
        for idx, data in reads.decisions(conn, _KINDS):
            e = entries_mod.decode(data)
            if isinstance(e, entries_mod.Decision):
                for key in _keys(e.decision, e.body):
                    self.by_key[key].append(idx)
        self._proved: dict[int, dict[str, Any]] = {}

    def of(self, what: str, value: str) -> list[int]:
        """Ledger indexes of the decisions naming ``what`` = ``value`` (log order)."""
        return sorted(set(self.by_key.get((what, value), [])))

    def message(self, device_id: str, seq: int) -> list[int]:
        """The ledger index of a device's custody event, as a list (empty: not logged)."""
        idx = ledger_log.find_message(self.conn, device_id, seq)
        return [] if idx is None else [idx]

    def prove(self, indexes: list[int]) -> list[dict[str, Any]]:
        """Leaf index, leaf hash and inclusion proof of each entry."""
        out = []
        for idx in sorted(set(indexes)):
            if idx not in self._proved and not self.paths:
                e = entries_mod.decode(ledger_log.entry(self.conn, idx))
                leaf = ledger_log.leaf_hash_at(self.conn, idx) or b""
                self._proved[idx] = {"leaf_index": idx, "entry_hash": leaf.hex(),
                                     "kind": e.decision if isinstance(e, entries_mod.Decision)
                                     else e.kind}
            if idx not in self._proved:
                doc = proofs.inclusion(self.conn, idx)
                self._proved[idx] = {
                    "leaf_index": idx, "entry_hash": _hex(doc["leaf_hash"]),
                    "kind": doc["view"].get("decision") or doc["view"].get("kind"),
                    "inclusion": doc}
            out.append(self._proved[idx])
        return out


def _hex(b64: str) -> str:
    return base64.b64decode(b64).hex()


# decisions that are part of the lot's own story; an order, trip, gate or sample decision
# also names its lot, but proves that trip, weighing or sample, not the lot
_LOT_KINDS = frozenset({"lot", "hold", "release", "release_approval", "blend"})


def _keys(kind: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    if kind in _LOT_KINDS:
        for field in ("lot_id", "lot", "blend_lot"):
            if isinstance(body.get(field), str):
                keys.append(("lot", body[field]))
        declared = body.get("lot")
        if isinstance(declared, dict) and isinstance(declared.get("lot_id"), str):
            keys.append(("lot", declared["lot_id"]))  # a declaration carries the lot
        for item in body.get("inputs") or []:
            if isinstance(item, dict):
                name = item.get("lot") or item.get("lot_id") or item.get("input_lot")
                if isinstance(name, str):
                    keys.append(("lot", name))
    order = body.get("order")
    if kind == "order":
        oid = body.get("order_id") or (order.get("order_id") if isinstance(order, dict)
                                       else None)
        if isinstance(oid, str):
            keys.append(("order", oid))
    if kind == "train" and isinstance(body.get("train_id"), str):
        keys.append(("train", body["train_id"]))
    if kind == "trip" and isinstance(body.get("trip_id"), str):
        keys.append(("trip", body["trip_id"]))
    seq = body.get("weighing_seq", body.get("seq"))
    if kind in ("gate", "sample_lot") and body.get("device_id") is not None and seq is not None:
        keys.append(("message", f"{body['device_id']}:{seq}"))  # the decision on a message
    return keys


def parse_ref(ref: str, what: str) -> tuple[str, int]:
    """``device:seq`` as (device, seq); InvalidInput saying the form otherwise."""
    device, sep, seq = ref.rpartition(":")
    if not sep or not device or not seq.isdigit():
        raise InvalidInput(f"{what} {ref[:80]!r}: give it as DEVICE:SEQ, e.g. wb-out:17")
    return device, int(seq)


# -- nodes --------------------------------------------------------------------------------

def _lot_node(conn: sqlite3.Connection, ix: LedgerIndex, lot_id: str, depth: int,
              seen: set[str]) -> Node:
    """A lot, its vessel and declaration, its holds and (for a blend) its inputs."""
    row = reads.lot(conn, lot_id)
    node: Node = {"type": "lot", "id": lot_id, "proofs": ix.prove(ix.of("lot", lot_id))}
    if row is None:
        node["missing"] = ("no lot record (declare it: portwatch lot declare); the lot is "
                           "known only from the trips and decisions that name it")
    else:
        node.update({k: row.get(k) for k in ("declaration_no", "commodity", "hs_code",
                                             "origin_country", "vessel", "declared_kg",
                                             "kind", "status")})
        node["vessel_node"] = {"type": "vessel", "id": row.get("vessel")}
        node["declaration"] = {"type": "declaration", "id": row.get("declaration_no")}
        node["history"] = [{k: e.get(k) for k in ("idx", "status", "reason", "actor",
                                                  "time_ms")}
                           for e in reads.lot_events(conn, lot_id)]
    node["holds"] = [{k: h.get(k) for k in ("id", "kind", "reason", "actor", "held_ms",
                                            "released_ms", "released_by")}
                     for h in reads.holds_of_lot(conn, lot_id)]
    inputs = reads.blend_inputs(conn, lot_id)
    if inputs:
        seen = seen | {lot_id}
        node["blend_inputs"] = []
        for i in inputs:
            child: Node = {"kg": i["kg"], "fraction": i["fraction"]}
            if i["input_lot"] in seen or depth >= _MAX_DEPTH:
                child["lot"] = {"type": "lot", "id": i["input_lot"],
                                "missing": "blend cycle or depth limit: not followed"}
            else:
                child["lot"] = _lot_node(conn, ix, i["input_lot"], depth + 1, seen)
            node["blend_inputs"].append(child)
    return node


def _weighing_node(conn: sqlite3.Connection, ix: LedgerIndex, device_id: str,
                   seq: int) -> Node:
    row = reads.weighing(conn, device_id, seq)
    node: Node = {"type": "weighing", "id": f"{device_id}:{seq}",
                  "proofs": ix.prove(ix.message(device_id, seq)
                                     + ix.of("message", f"{device_id}:{seq}"))}
    if row is None:
        node["missing"] = "no weighing stored for this device and seq"
    else:
        node.update({k: row.get(k) for k in ("plate", "gross_kg", "tare_kg", "net_kg",
                                             "device_ts")})
    return node


def _trip_node(conn: sqlite3.Connection, ix: LedgerIndex, row: dict[str, Any]) -> Node:
    tid = str(row["trip_id"])
    node: Node = {"type": "trip", "id": tid,
                  **{k: row.get(k) for k in ("plate", "tracker_id", "lot", "destination",
                                             "net_kg", "departed_ms", "arrived_ts",
                                             "status")},
                  "order": {"type": "order", "id": tid, "proofs": ix.prove(ix.of("order", tid))},
                  "proofs": ix.prove([e["idx"] for e in reads.trip_event_indexes(conn, tid)]
                                     + ix.of("trip", tid))}
    if row.get("gate_device") is not None and row.get("weighing_seq") is not None:
        node["weighing"] = _weighing_node(conn, ix, str(row["gate_device"]),
                                          int(row["weighing_seq"]))
    return node


def _car_node(conn: sqlite3.Connection, ix: LedgerIndex, row: dict[str, Any]) -> Node:
    node: Node = {"type": "car", "id": reads.car_id_of(conn, row), **row}
    device, seq = row.get("device_id"), row.get("seq")
    msgs = ix.message(str(device), int(seq)) if device is not None and seq is not None else []
    node["proofs"] = ix.prove(msgs + ix.of("train", str(row.get("train_id"))))
    return node


# -- backward -----------------------------------------------------------------------------

def backward(conn: sqlite3.Connection, *, trip: str | None = None, car: str | None = None,
             weighing: str | None = None, sample: str | None = None,
             paths: bool = True) -> Node:
    """From one trip, car, weighing or sample back to its lot, vessel, declaration and
    (through blends) every input lot. Exactly one start is given. NotFound when the start
    is not recorded; InvalidInput for a malformed or missing start. ``paths`` False leaves
    out the inclusion proofs (each entry's index, hash and kind stay)."""
    given = [(k, v) for k, v in (("trip", trip), ("car", car), ("weighing", weighing),
                                 ("sample", sample)) if v is not None]
    if len(given) != 1:
        raise InvalidInput("give exactly one of trip=, car=, weighing=DEVICE:SEQ or "
                           "sample=DEVICE:SEQ")
    what, ref = given[0]
    ix = LedgerIndex(conn, paths=paths)
    start: Node
    lot_id: str | None
    if what == "trip":
        row = reads.trip(conn, ref)
        if row is None:
            raise NotFound(f"no trip {ref!r}: list trips with `portwatch trip list`")
        start = _trip_node(conn, ix, row)
        lot_id = row.get("lot")
    elif what == "weighing":
        device, seq = parse_ref(ref, "weighing")
        start = _weighing_node(conn, ix, device, seq)
        if "missing" in start and not start["proofs"]:
            raise NotFound(f"no weighing {ref!r} stored: check the device id and seq")
        t = reads.trip_for_weighing(conn, device, seq)
        gate = reads.gate_decision(conn, device, seq)
        if t is not None:
            start["trip"] = _trip_node(conn, ix, t)
        lot_id = t.get("lot") if t else (gate.get("lot") if gate else None)
    elif what == "sample":
        device, seq = parse_ref(ref, "sample")
        srow = reads.sample(conn, device, seq)
        if srow is None:
            raise NotFound(f"no lab sample {ref!r} stored (samples are recorded from the "
                           "lab analyzer's sample events)")
        start = {"type": "sample", "id": ref, **srow,
                 "proofs": ix.prove(ix.message(device, seq)
                                    + ix.of("message", f"{device}:{seq}"))}
        lot_id = srow.get("lot_id")
    else:
        rows = reads.car(conn, ref)
        if not rows:
            raise NotFound(f"no rail car {ref!r} on any recorded passage")
        start = _car_node(conn, ix, rows[-1])
        start["passages"] = len(rows)
        lot_id = rows[-1].get("lot_id")
    out: Node = {"direction": "backward", "from": {"type": what, "id": ref}, "start": start}
    out["lot"] = (_lot_node(conn, ix, str(lot_id), 0, set()) if lot_id else
                  {"type": "lot", "id": None, "missing": "no lot recorded for this start"})
    out["checkpoint"] = _latest_checkpoint(conn)
    return out


# -- forward ------------------------------------------------------------------------------

def forward(conn: sqlite3.Connection, lot_id: str, *, paths: bool = True) -> Node:
    """From a lot to every trip and car that carried it and on through every blend it went
    into (each blend with the lot's fraction of it). NotFound when nothing names the lot.
    ``paths`` False leaves out the inclusion proofs."""
    ix = LedgerIndex(conn, paths=paths)
    node = _forward_lot(conn, ix, lot_id, 0, set())
    if (reads.lot(conn, lot_id) is None and not node["trips"] and not node["cars"]
            and not node["blended_into"] and not ix.of("lot", lot_id)):
        raise NotFound(f"lot {lot_id!r} is not recorded: no lot, trip, car, blend or ledger "
                       "decision names it")
    return {"direction": "forward", "from": {"type": "lot", "id": lot_id}, "lot": node,
            "totals": _totals(node), "checkpoint": _latest_checkpoint(conn)}


def _forward_lot(conn: sqlite3.Connection, ix: LedgerIndex, lot_id: str, depth: int,
                 seen: set[str]) -> Node:
    row = reads.lot(conn, lot_id)
    node: Node = {"type": "lot", "id": lot_id, "proofs": ix.prove(ix.of("lot", lot_id)),
                  "vessel": row.get("vessel") if row else None,
                  "declared_kg": row.get("declared_kg") if row else None,
                  "trips": [_trip_node(conn, ix, t) for t in reads.trips_of_lot(conn, lot_id)],
                  "cars": [_car_node(conn, ix, c) for c in reads.cars_of_lot(conn, lot_id)],
                  "blended_into": []}
    if row is None:
        node["missing"] = "no lot record"
    seen = seen | {lot_id}
    for b in reads.blends_containing(conn, lot_id):
        entry: Node = {"kg": b["kg"], "fraction": b["fraction"]}
        if b["blend_lot"] in seen or depth >= _MAX_DEPTH:
            entry["lot"] = {"type": "lot", "id": b["blend_lot"],
                            "missing": "blend cycle or depth limit: not followed"}
        else:
            entry["lot"] = _forward_lot(conn, ix, b["blend_lot"], depth + 1, seen)
        node["blended_into"].append(entry)
    return node


def _totals(node: Node) -> dict[str, Any]:
    """kg that left by truck and by rail per destination, directly from this lot."""
    by_dest: dict[str, int] = defaultdict(int)
    for t in node["trips"]:
        by_dest[str(t.get("destination"))] += int(t.get("net_kg") or 0)
    rail = sum(int(c.get("net_kg") or 0) for c in node["cars"])
    return {"trips": len(node["trips"]), "cars": len(node["cars"]),
            "truck_kg_by_destination": dict(sorted(by_dest.items())), "rail_kg": rail}


def _latest_checkpoint(conn: sqlite3.Connection) -> dict[str, Any] | None:
    cp = cp_mod.latest(conn)
    return None if cp is None else {"size": cp.size, "note": cp_mod.cosigned_note(conn, cp)}
