"""A lot's history as an EPCIS 2.0 JSON-LD document, each event with its CBV 2.0 event hash.

Events (all times UTC, offset +00:00; ids are ``urn:portwatch:<kind>:<id>`` URIs with the
id percent-encoded):

- ObjectEvent: each status of the lot (declared: ADD with the declared kg; unloading,
  storage, release, departure: OBSERVE), each out-gate weighing of a truck that carried it
  (quantity = the weighing's net kg, read point = the weighbridge), each lab sample
  (bizStep ``sampling``, results in ``sensorElementList``), each hold (``persistentDisposition``
  set) and release (unset).
- AggregationEvent: each truck trip (ADD at departure, parent = the trip, child quantity =
  the lot's kg, destination; DELETE at arrival) and each rail car loaded with the lot.
- TransformationEvent: each blend the lot is an input or the output of.
- Corrections are never edits: a ``lot`` decision whose body names ``corrects`` (the ledger
  index of an earlier ``lot`` decision) re-issues that earlier event with an
  ``errorDeclaration`` (same eventID) whose ``correctiveEventIDs`` name the new event.

``eventID`` is the CBV 2.0 event hash (``ni:///sha-256;…?ver=CBV2.0``): the pre-hash string
of CBV 2.0 §8.9 built here for exactly the fields these events use (hand-written: the
reference package, epcis-event-hash-generator, pulls a JSON-LD processor, Flask and lxml
into the controller; tests check every id against it). ``ledger`` (outside the EPCIS
document, in ``ledger_refs``) maps each eventID to the ledger entries behind it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from controller.errors import NotFound
from controller.ledger import entries as entries_mod
from controller.storage import ledger_log
from controller.storage import trace_reads as reads

CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
Event = dict[str, Any]

# a lot status -> (bizStep, disposition) of its ObjectEvent
_STATUS = {
    "declared": ("commissioning", "active"),
    "anchorage_quarantine": ("holding", "non_sellable_other"),
    "unloading": ("unloading", "in_progress"),
    "stored": ("storing", "sellable_not_accessible"),
    "released": ("accepting", "sellable_accessible"),
    "held": ("holding", "non_sellable_other"),
    "departed": ("departing", "in_transit"),
}
_HOLD_DISPOSITION = {"recall": "recalled"}  # any other hold kind: non_conformant
_SAMPLE_FIELDS = {"moisture_pm": "Dimensionless", "protein_pm": "Dimensionless",
                  "impurity_pm": "Dimensionless", "test_weight_g_per_l": "Density"}
_SAMPLE_UOM = {"moisture_pm": "59", "protein_pm": "59", "impurity_pm": "59",
               "test_weight_g_per_l": "GL"}  # UN/ECE rec 20: 59 = ppm, GL = g/l


def uri(kind: str, ident: str) -> str:
    """A portwatch identifier as a URI (``urn:portwatch:lot:LOT-7``)."""
    return f"urn:portwatch:{kind}:{quote(str(ident), safe='-._~')}"


def iso(ms: int) -> str:
    """Epoch ms as an EPCIS dateTime (UTC, millisecond precision)."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _qty(lot_id: str, kg: Any) -> list[dict[str, Any]]:
    item: dict[str, Any] = {"epcClass": uri("lot", lot_id)}
    if kg is not None:
        item.update({"quantity": float(kg), "uom": "KGM"})
    return [item]


def _event(kind: str, ms: int, **fields: Any) -> Event:
    return {"type": kind, "eventTime": iso(ms), "eventTimeZoneOffset": "+00:00", **fields}


# -- the CBV 2.0 event hash ---------------------------------------------------------------

_CBV = "https://ref.gs1.org/cbv/"
_VOC = "https://gs1.org/voc/"
_ORDER = ("eventTime", "eventTimeZoneOffset", "parentID", "epcList", "quantityList",
          "childQuantityList", "inputQuantityList", "outputQuantityList", "action",
          "bizStep", "disposition", "persistentDisposition", "readPoint", "bizLocation",
          "sourceList", "destinationList", "sensorElementList")
_QTY = ("epcClass", "quantity", "uom")
_META = ("time", "startTime", "endTime", "deviceID", "deviceMetadata", "rawData",
         "dataProcessingMethod", "bizRules")
_REPORT = ("type", "exception", "deviceID", "deviceMetadata", "rawData",
           "dataProcessingMethod", "time", "microorganism", "chemicalSubstance", "value",
           "component", "stringValue", "booleanValue", "hexBinaryValue", "uriValue",
           "minValue", "maxValue", "meanValue", "sDev", "percRank", "percValue", "uom",
           "coordinateReferenceSystem")


def _num(value: Any) -> str:
    f = float(value)
    return str(int(f)) if f == int(f) else str(f)


def _value(key: str, value: Any) -> str:
    """A field's canonical value: CBV short names as web vocabulary URIs, numbers without
    trailing zeros, times at ms in UTC."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _num(value)
    text = str(value)
    if key == "bizStep" and ":" not in text:
        return f"{_CBV}BizStep-{text}"
    if key in ("disposition", "set", "unset") and ":" not in text:
        return f"{_CBV}Disp-{text}"
    if key == "type" and text in ("owning_party", "possessing_party", "location"):
        return f"{_CBV}SDT-{text}"
    if key == "type" and ":" not in text:  # a measurement type
        return f"{_VOC}{text}"  # as the EPCIS 2.0 context expands it
    return text


def _field(key: str, value: Any) -> str:
    return f"{key}={_value(key, value)}"


def _items(key: str, values: list[str]) -> str:
    return key + "".join(sorted(values)) if values else ""


def _ordered(obj: dict[str, Any], order: tuple[str, ...]) -> str:
    return "".join(_field(k, obj[k]) for k in order if obj.get(k) is not None)


def prehash(event: Event) -> str:
    """The CBV 2.0 §8.9 pre-hash string of one event (the fields this module emits)."""
    out = [f"eventType={event['type']}"]
    for key in _ORDER:
        v = event.get(key)
        if v is None:
            continue
        if key in ("eventTime", "eventTimeZoneOffset", "parentID", "action", "bizStep",
                   "disposition"):
            out.append(_field(key, v))
        elif key == "epcList":
            out.append(_items(key, [_field("epc", e) for e in v]))
        elif key.endswith("uantityList"):
            out.append(_items(key, ["quantityElement" + _ordered(q, _QTY) for q in v]))
        elif key == "persistentDisposition":
            out.append(key + "".join(_items("", [_field(k, d) for d in v.get(k, [])])
                                     for k in ("set", "unset")))
        elif key in ("readPoint", "bizLocation"):
            out.append(f"{key}id={v['id']}")
        elif key in ("sourceList", "destinationList"):
            name = key[:-4]
            out.append(key + "".join(f"{_field('type', d['type'])}{name}={d[name]}"
                                     for d in v))  # in order: CBV 2.0 does not sort these
        elif key == "sensorElementList":
            out.append(_items(key, [
                "sensorElement" + ("sensorMetadata" + _ordered(e["sensorMetadata"], _META)
                                   if e.get("sensorMetadata") else "")
                + _items("", ["sensorReport" + _ordered(r, _REPORT)
                              for r in e["sensorReport"]]) for e in v]))
    return "".join(out)


def event_hash(event: Event) -> str:
    """The CBV 2.0 event hash ID of one event (sha-256)."""
    digest = hashlib.sha256(prehash(event).encode()).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


# -- the lot's events ---------------------------------------------------------------------

def lot_events(conn: sqlite3.Connection, lot_id: str) -> list[tuple[Event, list[int]]]:
    """(event without its id, ledger indexes behind it) for every event of ``lot_id``, in
    time order. NotFound when nothing is recorded about the lot."""
    events: list[tuple[Event, list[int]]] = []
    row = reads.lot(conn, lot_id)
    corrections = _corrections(conn, lot_id)
    for ev in reads.lot_events(conn, lot_id):
        step, disp = _STATUS.get(str(ev["status"]), ("other", "unknown"))
        action = "ADD" if ev["status"] == "declared" else "OBSERVE"
        kg = row.get("declared_kg") if row and action == "ADD" else None
        e = _event("ObjectEvent", int(ev["time_ms"]), quantityList=_qty(lot_id, kg),
                   action=action, bizStep=step, disposition=disp,
                   bizLocation={"id": uri("lot-status", str(ev["status"]))})
        if int(ev["idx"]) in corrections:
            e["_corrected_by"] = corrections[int(ev["idx"])]
        events.append((e, [int(ev["idx"])]))
    for h in reads.holds_of_lot(conn, lot_id):
        disp = _HOLD_DISPOSITION.get(str(h.get("kind") or "manual"), "non_conformant")
        idx = _decision_index(conn, "hold", h["id"])
        events.append((_event("ObjectEvent", int(h["held_ms"]), quantityList=_qty(lot_id, None),
                              action="OBSERVE", bizStep="holding",
                              persistentDisposition={"set": [disp]}), idx))
        if h.get("released_ms") is not None:
            events.append((_event("ObjectEvent", int(h["released_ms"]),
                                  quantityList=_qty(lot_id, None), action="OBSERVE",
                                  bizStep="holding", persistentDisposition={"unset": [disp]}),
                           _decision_index(conn, "release", h["id"])))
    for t in reads.trips_of_lot(conn, lot_id):
        events += _trip_events(conn, lot_id, t)
    for c in reads.cars_of_lot(conn, lot_id):
        car_id = reads.car_id_of(conn, c)
        ms = c.get("passed_ts") or c.get("released_ms") or c.get("created_ms")
        if car_id is None or ms is None:
            continue
        msg = _message_index(conn, c.get("device_id"), c.get("seq"))
        msg += [i for i, body in _decisions(conn, "train")
                if body.get("train_id") == c.get("train_id")][:1]
        car_event = _event("AggregationEvent", int(ms), parentID=uri("car", car_id),
                           childQuantityList=_qty(lot_id, c.get("net_kg")), action="ADD",
                           bizStep="loading", disposition="in_transit")
        if c.get("destination"):
            car_event["destinationList"] = [{"type": "location",
                                             "destination": uri("zone", c["destination"])}]
        events.append((car_event, msg))
    for s in reads.samples_of_lot(conn, lot_id):
        events.append(_sample_event(conn, lot_id, s))
    events += _blend_events(conn, lot_id)
    if not events and row is None:
        raise NotFound(f"lot {lot_id!r} is not recorded: nothing to export")
    events.sort(key=lambda pair: (pair[0]["eventTime"], min(pair[1], default=-1)))
    return events


def _trip_events(conn: sqlite3.Connection, lot_id: str,
                 t: dict[str, Any]) -> list[tuple[Event, list[int]]]:
    tid, out = str(t["trip_id"]), []
    trip_idx = [int(e["idx"]) for e in reads.trip_event_indexes(conn, tid)]
    if t.get("gate_device") is not None and t.get("weighing_seq") is not None:
        w = reads.weighing(conn, str(t["gate_device"]), int(t["weighing_seq"]))
        ms = int(w["device_ts"]) if w and w.get("device_ts") else int(t["departed_ms"])
        kg = w["net_kg"] if w else t.get("net_kg")  # what the weighbridge said, signed
        out.append((_event("ObjectEvent", ms, quantityList=_qty(lot_id, kg),
                           action="OBSERVE", bizStep="inspecting",
                           readPoint={"id": uri("device", str(t["gate_device"]))}),
                    _message_index(conn, t["gate_device"], t["weighing_seq"])))
    dest = [{"type": "location", "destination": uri("zone", str(t["destination"]))}] \
        if t.get("destination") else None
    depart = _event("AggregationEvent", int(t["departed_ms"]), parentID=uri("trip", tid),
                    childQuantityList=_qty(lot_id, t.get("net_kg")), action="ADD",
                    bizStep="loading", disposition="in_transit")
    if dest:
        depart["destinationList"] = dest
    out.append((depart, trip_idx[:1]))
    if t.get("arrived_ts") is not None:
        out.append((_event("AggregationEvent", int(t["arrived_ts"]), parentID=uri("trip", tid),
                           childQuantityList=_qty(lot_id, t.get("net_kg")), action="DELETE",
                           bizStep="arriving"), trip_idx[-1:]))
    return out


def _sample_event(conn: sqlite3.Connection, lot_id: str,
                  s: dict[str, Any]) -> tuple[Event, list[int]]:
    ms = int(s.get("sampled_ts") or s.get("device_ts") or 0)
    reports = [{"type": mtype, "value": float(s[f]), "uom": _SAMPLE_UOM[f]}
               for f, mtype in _SAMPLE_FIELDS.items() if s.get(f) is not None]
    e = _event("ObjectEvent", ms, quantityList=_qty(lot_id, None), action="OBSERVE",
               bizStep="sampling", readPoint={"id": uri("device", str(s["device_id"]))})
    if reports:
        e["sensorElementList"] = [{"sensorMetadata": {
            "time": iso(ms), "deviceID": uri("device", str(s["device_id"]))},
            "sensorReport": reports}]
    return e, _message_index(conn, s["device_id"], s["seq"])


def _blend_events(conn: sqlite3.Connection, lot_id: str) -> list[tuple[Event, list[int]]]:
    out = []
    names = {lot_id} | {r["blend_lot"] for r in reads.blends_containing(conn, lot_id)}
    for name in sorted(names):
        b = reads.blend(conn, name)
        inputs = reads.blend_inputs(conn, name)
        if b is None or not inputs:
            continue
        idx = [i for i, body in _decisions(conn, "blend") if body.get("blend_lot") == name]
        out.append((_event("TransformationEvent", int(b["created_ms"]),
                           inputQuantityList=[q for i in inputs
                                              for q in _qty(i["input_lot"], i["kg"])],
                           outputQuantityList=_qty(name, b.get("total_kg")),
                           bizStep="creating_class_instance"), idx[:1]))
    return out


def _decisions(conn: sqlite3.Connection, kind: str) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for idx, data in reads.decisions(conn, (kind,)):
        e = entries_mod.decode(data)
        if isinstance(e, entries_mod.Decision):
            out.append((idx, e.body))
    return out


def _decision_index(conn: sqlite3.Connection, kind: str, hold_id: Any) -> list[int]:
    return [i for i, body in _decisions(conn, kind) if body.get("hold_id") == hold_id][:1]


def _message_index(conn: sqlite3.Connection, device: Any, seq: Any) -> list[int]:
    if device is None or seq is None:
        return []
    idx = ledger_log.find_message(conn, str(device), int(seq))
    return [] if idx is None else [idx]


def _corrections(conn: sqlite3.Connection, lot_id: str) -> dict[int, dict[str, Any]]:
    """Earlier ``lot`` decision index -> the correcting decision (index, time, reason)."""
    out: dict[int, dict[str, Any]] = {}
    for idx, data in reads.decisions(conn, ("lot",)):
        e = entries_mod.decode(data)
        if (isinstance(e, entries_mod.Decision) and e.body.get("lot_id") == lot_id
                and isinstance(e.body.get("corrects"), int)):
            out[int(e.body["corrects"])] = {"idx": idx, "time_ms": e.time_ms,
                                            "reason": e.body.get("reason")}
    return out


# -- the document -------------------------------------------------------------------------

def document(conn: sqlite3.Connection, lot_id: str, *, now_ms: int) -> dict[str, Any]:
    """The EPCIS 2.0 document of ``lot_id``'s history, and ``ledger_refs`` (eventID ->
    ledger indexes) beside it under the portwatch key ``pw:ledger`` in the header."""
    pairs = lot_events(conn, lot_id)
    by_idx: dict[int, str] = {}
    events: list[Event] = []
    refs: dict[str, list[int]] = {}
    for e, idx in pairs:
        corrected = e.pop("_corrected_by", None)
        e["eventID"] = event_hash(e)
        for i in idx:
            by_idx[i] = e["eventID"]
        refs.setdefault(e["eventID"], []).extend(idx)
        events.append(e)
        if corrected is not None:
            e["_corrected_by"] = corrected
    for e in events:  # an error declaration re-issues the original with the same eventID
        corrected = e.pop("_corrected_by", None)
        if corrected is None:
            continue
        declared: Event = {k: v for k, v in e.items()}
        declared["errorDeclaration"] = {
            "declarationTime": iso(int(corrected["time_ms"])), "reason": "incorrect_data",
            "correctiveEventIDs": [by_idx[corrected["idx"]]] if corrected["idx"] in by_idx
            else []}
        events.append(declared)
        refs[e["eventID"]].append(int(corrected["idx"]))
    return {"@context": [CONTEXT, {"pw": "urn:portwatch:ns:"}],
            "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": iso(now_ms),
            "epcisBody": {"eventList": events},
            "pw:ledgerRefs": {k: sorted(set(v)) for k, v in refs.items()}}


def dumps(doc: dict[str, Any]) -> str:
    """The document as JSON-LD text (UTF-8, stable key order)."""
    return json.dumps(doc, ensure_ascii=False, indent=2)
