"""EPCIS 2.0 export of a lot's history: the document validates against GS1's EPCIS 2.0
JSON schema (tests/controller/fixtures/epcis/, see SOURCE.md there) and every eventID equals
the CBV 2.0 event hash computed by the reference package epcis-event-hash-generator."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from epcis_event_hash_generator import hash_generator
from epcis_event_hash_generator.json_to_py import event_list_from_epcis_document_json

from controller import epcis
from controller.errors import NotFound
from controller.storage import Store, ledger_log

from .trace_store import T0, scripted, truck_out

SCHEMA = json.loads((Path(__file__).parent.parent / "fixtures" / "epcis" /
                     "EPCIS-JSON-Schema.json").read_text())


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    return [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(doc)]


def _reference_hashes(doc: dict[str, Any]) -> list[str]:
    events = event_list_from_epcis_document_json(copy.deepcopy(doc))
    return list(hash_generator.epcis_hashes_from_events(events))


def test_epcis_lot_document_validates_and_hashes_match(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    doc = epcis.document(db.conn, "LOT-A", now_ms=T0)
    assert _schema_errors(doc) == []
    events = doc["epcisBody"]["eventList"]
    kinds = [(e["type"], e.get("bizStep"), e.get("action")) for e in events]
    trucks = [e for e in events if e.get("parentID", "").startswith("urn:portwatch:trip:")]
    assert [(e["action"], e["bizStep"]) for e in trucks] == [("ADD", "loading")] * 2
    if story["rail_built"]:
        (car,) = [e for e in events if e.get("parentID") == "urn:portwatch:car:DLCX1234"]
        assert car["childQuantityList"][0]["quantity"] == 61000
    assert kinds.count(("ObjectEvent", "inspecting", "OBSERVE")) == 2  # their weighings
    assert [e["persistentDisposition"] for e in events if "persistentDisposition" in e] == [
        {"set": ["non_conformant"]}, {"unset": ["non_conformant"]}]
    if story["lots_built"]:
        assert [e["bizStep"] for e in events if e.get("bizStep") in
                ("commissioning", "unloading", "storing")][:3] == [
            "commissioning", "unloading", "storing"]
    if story["blends_built"]:
        (tr,) = [e for e in events if e["type"] == "TransformationEvent"]
        assert {q["epcClass"] for q in tr["inputQuantityList"]} == {
            "urn:portwatch:lot:LOT-A", "urn:portwatch:lot:LOT-B"}
    assert [e["eventID"] for e in events] == _reference_hashes(doc)
    # every event names the ledger entries behind it
    assert set(doc["pw:ledgerRefs"]) == {e["eventID"] for e in events}
    assert all(doc["pw:ledgerRefs"][e["eventID"]] for e in events)


def test_epcis_sensor_and_destination_hashes_match_reference() -> None:
    """Event shapes the scripted store may not produce (a lab sample's sensor reports)."""
    sample = epcis._event("ObjectEvent", T0, quantityList=epcis._qty("LOT-A", None),
                          action="OBSERVE", bizStep="sampling",
                          readPoint={"id": epcis.uri("device", "lab-1")},
                          sensorElementList=[{
                              "sensorMetadata": {"time": epcis.iso(T0),
                                                 "deviceID": epcis.uri("device", "lab-1")},
                              "sensorReport": [
                                  {"type": "Dimensionless", "value": 131000.0, "uom": "59"},
                                  {"type": "Density", "value": 742.5, "uom": "GL"}]}])
    sample["eventID"] = epcis.event_hash(sample)
    doc = {"@context": [epcis.CONTEXT], "type": "EPCISDocument", "schemaVersion": "2.0",
           "creationDate": epcis.iso(T0), "epcisBody": {"eventList": [sample]}}
    assert _schema_errors(doc) == []
    assert [sample["eventID"]] == _reference_hashes(doc)


def test_epcis_correction_is_error_declaration_not_edit(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    if not story["lots_built"]:
        pytest.skip("lots are not in this tree's schema yet")
    first = db.conn.execute("SELECT idx FROM lot_events WHERE lot_id='LOT-A' ORDER BY idx "
                            "LIMIT 1").fetchone()[0]
    before = epcis.document(db.conn, "LOT-A", now_ms=T0)
    with db.transaction() as conn:
        idx = ledger_log.append_decision(conn, "lot", "cli:officer", {
            "lot_id": "LOT-A", "status": "declared", "corrects": first,
            "reason": "declared kg was wrong"}, T0 + 1000)
        conn.execute("INSERT INTO lot_events (lot_id, idx, status, reason, actor, time_ms) "
                     "VALUES ('LOT-A', ?, 'declared', 'correction', 'cli:officer', ?)",
                     (idx, T0 + 1000))
    after = epcis.document(db.conn, "LOT-A", now_ms=T0)
    assert _schema_errors(after) == []
    old = before["epcisBody"]["eventList"]
    new = after["epcisBody"]["eventList"]
    assert new[:len(old)] == old[:len(old)] or {e["eventID"] for e in old} <= {
        e["eventID"] for e in new}  # nothing was edited away
    (declared,) = [e for e in new if "errorDeclaration" in e]
    assert declared["errorDeclaration"]["reason"] == "incorrect_data"
    original = [e for e in new if e["eventID"] == declared["eventID"]]
    assert len(original) == 2  # the original and its error declaration share the eventID
    (fix,) = declared["errorDeclaration"]["correctiveEventIDs"]
    assert fix in {e["eventID"] for e in new} and fix != declared["eventID"]
    assert [e["eventID"] for e in new] == _reference_hashes(after)


def test_epcis_weighing_kg_is_the_weighbridge_s_not_the_trip_s(db: Store, db_path: Path) -> None:
    """A trip recorded with another kg than its weighing (a departure made by hand): the
    weighing's ObjectEvent states what the weighbridge signed, the trip's load the trip's."""
    story = scripted(db, db_path)
    trip = truck_out(db, story["wb_out"], "LOT-C", seq=9, plate="P-9", net_kg=20000,
                     trip_kg=19000, dkey=story["dkey"])
    events = epcis.document(db.conn, "LOT-C", now_ms=T0)["epcisBody"]["eventList"]
    (weighing,) = [e for e in events if e.get("bizStep") == "inspecting"]
    (load,) = [e for e in events if e.get("parentID") == f"urn:portwatch:trip:{trip}"]
    assert weighing["quantityList"][0]["quantity"] == 20000
    assert load["childQuantityList"][0]["quantity"] == 19000


def test_epcis_unknown_lot_is_not_found(db: Store) -> None:
    with pytest.raises(NotFound, match="not recorded"):
        epcis.document(db.conn, "LOT-NONE", now_ms=T0)
