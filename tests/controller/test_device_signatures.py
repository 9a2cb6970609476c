"""Custody events signed by the device itself: key registration (first authentic birth, or
an admin) as ledger decisions, the signature checked at ingest, ``device_signed`` kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller import registry
from controller.errors import InvalidInput
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import BatchResult, commit_batch
from controller.ledger import device_keys
from controller.ledger import entries as entry_mod
from controller.storage import Store, ledger_log
from ctl_helpers import SITE, signed
from devsig_helpers import DevKey, birth, evt, hmac_wire, strip_es256


def _commit(db: Store, *msgs: Received) -> BatchResult:
    keys = registry.secrets_by_device(db)
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])


def _decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entry_mod.decode(data)
        if isinstance(e, entry_mod.Decision) and e.decision == kind:
            out.append({"actor": e.actor, **e.body})
    return out


def _signed_flags(db: Store) -> dict[int, int | None]:
    return {r["seq"]: r["device_signed"] for r in db.db["messages"].rows}


def test_first_birth_registers_the_key_as_a_ledger_decision(db: Store,
                                                            device: dict[str, Any]) -> None:
    k = DevKey()
    assert _commit(db, birth(device, pub=k.pub)).rejected == {}
    assert registry.get(db, "wb-1")["device_pub"] == k.pub
    assert _decisions(db, "device_key") == [{"actor": "device:wb-1", "device_id": "wb-1",
                                             "pub": k.pub, "source": "birth",
                                             "replaces": None}]


def test_device_signed_event_is_stored_with_device_signed_true(db: Store,
                                                               device: dict[str, Any]) -> None:
    k = DevKey()
    result = _commit(db, birth(device, pub=k.pub), evt(device, seq=1, dkey=k))
    assert (result.stored, result.rejected) == (1, {})
    assert _signed_flags(db) == {1: 1}


def test_event_resealed_with_only_the_hmac_secret_is_rejected(db: Store,
                                                              device: dict[str, Any]) -> None:
    k, other = DevKey(), DevKey()
    _commit(db, birth(device, pub=k.pub))
    real = evt(device, seq=1, dkey=k)
    no_line = strip_es256(real, device["secret_hex"], device["key_id"])
    other_key = evt(device, seq=1, dkey=other)
    edited = evt(device, seq=1, dkey=None, body={**json.loads(
        real.payload.split(b"\n")[0])["body"], "net_kg": 1},
        es256=real.payload.split(b"\n")[1][6:].decode())  # the device's line on other JSON
    result = _commit(db, no_line, other_key, edited)
    assert result.rejected == {"bad_device_signature": 3}
    assert result.stored == 0 and db.db["messages"].count == 0
    details = [r["detail"] for r in db.db["rejections"].rows]
    assert any("no es256 line" in d for d in details), details
    assert sum("does not verify" in d for d in details) == 2, details
    assert _commit(db, real).stored == 1  # the device's own message still goes in


def test_high_s_twin_of_a_valid_signature_is_rejected(db: Store,
                                                      device: dict[str, Any]) -> None:
    k = DevKey()
    _commit(db, birth(device, pub=k.pub))
    real = evt(device, seq=1, dkey=k)
    line = real.payload.split(b"\n")[1][6:].decode()
    twin = f"{line[:64]}{device_keys.N - int(line[64:], 16):064x}"  # also a valid ECDSA sig
    result = _commit(db, evt(device, seq=1, dkey=None, es256=twin))
    assert result.rejected == {"bad_device_signature": 1}
    assert "low-s" in next(iter(db.db["rejections"].rows))["detail"]


def test_device_without_key_is_accepted_on_hmac_and_served_unsigned(
        db: Store, device: dict[str, Any]) -> None:
    result = _commit(db, birth(device, pub=None), signed(device, seq=1))
    assert (result.stored, result.rejected) == (1, {})
    assert _signed_flags(db) == {1: 0}
    assert registry.get(db, "wb-1")["device_pub"] is None


def test_birth_with_another_key_is_not_adopted_and_alerts(db: Store,
                                                          device: dict[str, Any]) -> None:
    k, intruder = DevKey(), DevKey()
    _commit(db, birth(device, pub=k.pub))
    result = _commit(db, birth(device, pub=intruder.pub, boot=2),
                     evt(device, seq=1, dkey=intruder))
    assert registry.get(db, "wb-1")["device_pub"] == k.pub
    assert result.rejected == {"bad_device_signature": 1}
    alerts = list(db.db["alerts"].rows)
    assert [(a["code"], a["severity"], a["device_id"]) for a in alerts] == [
        ("device_key_mismatch", "critical", "wb-1")]
    assert json.loads(alerts[0]["detail_json"])["offered"] == intruder.pub
    assert len(_decisions(db, "device_key")) == 1
    assert [d["code"] for d in _decisions(db, "alert")] == ["device_key_mismatch"]
    # the same offer again is the same alert, not a second one
    _commit(db, birth(device, pub=intruder.pub, boot=3))
    assert db.db["alerts"].count == 1


def test_admin_replacement_is_a_decision_and_ingest_follows_it(db: Store,
                                                               device: dict[str, Any]) -> None:
    old, new = DevKey(), DevKey()
    _commit(db, birth(device, pub=old.pub), evt(device, seq=1, dkey=old))
    _commit(db, birth(device, pub=new.pub, boot=2))  # a re-flashed device: alert
    done = registry.set_device_key(db, "wb-1", new.pub, actor="token:admin-1")
    assert done["replaces"] == old.pub
    assert _decisions(db, "device_key")[-1] == {
        "actor": "token:admin-1", "device_id": "wb-1", "pub": new.pub, "source": "admin",
        "replaces": old.pub}
    assert [a["cleared_by"] for a in db.db["alerts"].rows] == ["token:admin-1"]
    result = _commit(db, evt(device, seq=2, dkey=old), evt(device, seq=2, dkey=new))
    assert (result.stored, result.rejected) == (1, {"bad_device_signature": 1})
    assert _signed_flags(db) == {1: 1, 2: 1}


def test_admin_key_must_be_a_p256_point(db: Store, device: dict[str, Any]) -> None:
    not_on_curve = "04" + "11" * 64
    for bad in ("04" + "1f" * 63, not_on_curve, "xyz"):
        with pytest.raises(InvalidInput, match="pub"):
            registry.set_device_key(db, "wb-1", bad, actor="cli")
    assert _decisions(db, "device_key") == []


def test_birth_pub_off_the_curve_is_bad_body(db: Store, device: dict[str, Any]) -> None:
    result = _commit(db, birth(device, pub="04" + "11" * 64))
    assert result.rejected == {"bad_body": 1}
    assert registry.get(db, "wb-1")["device_pub"] is None


def test_es256_line_outside_evt_and_malformed_lines_are_bad_shape(
        db: Store, device: dict[str, Any]) -> None:
    k = DevKey()
    good = evt(device, seq=1, dkey=k)
    raw = good.payload.split(b"\n")[0]
    topic = good.topic.replace("/evt", "/tele")
    health = json.loads(raw) | {"kind": "health", "body": {"fw": "1"}}
    hraw = json.dumps(health).encode()
    on_tele = Received(topic, hmac_wire(bytes.fromhex(device["secret_hex"]), "k1", topic,
                                        hraw + b"\nes256:" + k.sign(topic, hraw).encode()), 5)
    garbled = Received(good.topic, hmac_wire(bytes.fromhex(device["secret_hex"]), "k1",
                                             good.topic, raw + b"\nsig:abc"), 5)
    assert _commit(db, on_tele, garbled).rejected == {"bad_shape": 2}


def test_duplicate_of_an_event_stored_before_the_key_stays_a_duplicate(
        db: Store, device: dict[str, Any]) -> None:
    """An old agent's unacknowledged event resent after the upgrade is acknowledged, not
    refused for ever."""
    k = DevKey()
    old = signed(device, seq=1)
    _commit(db, old)
    _commit(db, birth(device, pub=k.pub))
    assert _commit(db, old).rejected == {"duplicate": 1}


def test_a_schema_6_store_gets_the_device_key_columns(db_path: Any, db: Store,
                                                      device: dict[str, Any]) -> None:
    from controller.storage import open_store

    _commit(db, signed(device, seq=1))
    db.conn.execute("ALTER TABLE devices DROP COLUMN device_pub")
    db.conn.execute("ALTER TABLE messages DROP COLUMN device_signed")
    db.conn.execute("PRAGMA user_version=6")
    db.close()
    again = open_store(db_path)
    assert registry.get(again, "wb-1")["device_pub"] is None
    assert [r["device_signed"] for r in again.db["messages"].rows] == [None]
    k = DevKey()
    assert _commit(again, birth(device, pub=k.pub), evt(device, seq=2, dkey=k)).stored == 1


def test_api_registers_a_key_and_serves_device_signed(db_path: Any, db: Store,
                                                      device: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from controller import auth
    from controller.api.app import create_app

    client = TestClient(create_app(db_path=db_path, site=SITE))
    admin = {"Authorization": "Bearer " + auth.create_token(db, name="adm", role="admin")}
    operator = {"Authorization": "Bearer " + auth.create_token(db, name="op", role="operator")}
    _commit(db, signed(device, seq=1))  # before any key: HMAC only
    k = DevKey()
    url = "/api/v1/devices/wb-1/device-key"
    assert client.post(url, json={"pub": k.pub}, headers=operator).status_code == 403
    off_curve = client.post(url, json={"pub": "04" + "11" * 64}, headers=admin)
    assert off_curve.status_code == 422 and "P-256" in off_curve.json()["detail"]
    r = client.post(url, json={"pub": k.pub}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["replaces"] is None and r.json()["pub"] == k.pub
    assert _decisions(db, "device_key")[-1]["actor"].startswith("token:adm")
    assert client.get("/api/v1/devices/wb-1", headers=operator).json()["device_pub"] == k.pub
    assert client.post("/api/v1/devices/nope/device-key", json={"pub": k.pub},
                       headers=admin).status_code == 404
    _commit(db, evt(device, seq=2, dkey=k))
    got = {w["seq"]: w["device_signed"]
           for w in client.get("/api/v1/weighings", headers=operator).json()}
    assert got == {1: False, 2: True}
    assert client.get("/api/v1/weighings/wb-1/2", headers=operator).json()["device_signed"]


def test_cli_set_key_records_the_decision(db_path: Any, db: Store,
                                          device: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from tools.cli import app

    k, new = DevKey(), DevKey()
    _commit(db, birth(device, pub=k.pub))
    r = CliRunner().invoke(app, ["device", "set-key", "wb-1", new.pub, "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "replaces" in r.output
    assert registry.get(db, "wb-1")["device_pub"] == new.pub
    assert _decisions(db, "device_key")[-1]["replaces"] == k.pub
    bad = CliRunner().invoke(app, ["device", "set-key", "wb-1", "04beef", "--db", str(db_path)])
    assert bad.exit_code == 1 and "130 lowercase hex" in bad.output


def test_the_audit_replays_device_signed_events_clean(db: Store,
                                                      device: dict[str, Any]) -> None:
    """The es256 line sits in the stored payload: the audit's replay parses the JSON alone."""
    from controller import audit
    from controller.storage.database import read_snapshot

    k = DevKey()
    _commit(db, birth(device, pub=k.pub), evt(device, seq=1, dkey=k),
            evt(device, seq=2, dkey=k, kind="alarm",
                body={"alarm": "overload", "state": "raised"}))
    with read_snapshot(db.path) as conn:
        report = audit.audit_store(conn)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.entries == 2 and report.tables["weighings"].checked == 1
