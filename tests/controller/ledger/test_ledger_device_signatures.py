"""`ledger verify` checks every custody event's device signature offline, from the bundle
alone: an event the operator made with the stolen HMAC secret fails, named by its entry."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from controller import registry
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.ledger import bundle, checkpoint, device_keys, entries, note
from controller.storage import Store, ledger_log, transaction
from ctl_helpers import SITE, signed
from devsig_helpers import DevKey, birth, evt, strip_es256
from tools.cli import app


def _commit(db: Store, *msgs: Received) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])


def _insert(conn: sqlite3.Connection, msg: Received, seq: int, device_id: str = "wb-1") -> int:
    """What an operator with the store and the HMAC secret does: put a message in the log
    as if the ingest had accepted it."""
    with transaction(conn):
        return ledger_log.append(conn, [entries.device_message(
            device_id=device_id, channel="evt", topic=msg.topic, seq=seq,
            received_ms=msg.received_ms, wire=msg.payload)])[0]


def _honest(db: Store, device: dict[str, Any], k: DevKey) -> None:
    """wb-1 registers its key at birth and sends two signed weighings; wb-old (an agent
    without a device key) one HMAC-only weighing."""
    old = registry.provision(db, device_id="wb-old", site=SITE, kind="weighbridge", driver={})
    _commit(db, birth(device, pub=k.pub), evt(device, seq=1, dkey=k),
            evt(device, seq=2, dkey=k), signed(old, seq=1))


def _verify(path: Path, signer: note.Signer) -> bundle.Report:
    return bundle.verify(path, log_key=signer.verifier.vkey)


def _export(db_path: Path, out: Path, since: int = 0) -> Path:
    bundle.export(db_path, out, since_size=since)
    return out


def test_honest_bundle_passes_and_counts_device_signed_and_hmac_only(
        db: Store, db_path: Path, device: dict[str, Any], signer: note.Signer,
        tmp_path: Path) -> None:
    _honest(db, device, DevKey())
    checkpoint.create(db.conn, signer, 1)
    out = _export(db_path, tmp_path / "b.json")
    report = _verify(out, signer)
    assert report.ok, report.failures
    assert (report.device_signed, report.hmac_only) == (2, 1)
    r = CliRunner().invoke(app, ["ledger", "verify", str(out), "--log-key",
                                 signer.verifier.vkey])
    assert r.exit_code == 0, r.output
    assert "custody events: 2 signed by their device, 1 HMAC-only" in r.output


def test_event_forged_with_the_stolen_hmac_secret_fails_offline_verify(
        db: Store, db_path: Path, device: dict[str, Any], signer: note.Signer,
        tmp_path: Path) -> None:
    k = DevKey()
    _honest(db, device, k)
    # the operator holds the device's HMAC secret (it is in the store) and the log key:
    # a weighing with a valid HMAC and no device signature, logged and signed as genuine
    forged = strip_es256(evt(device, seq=3, dkey=k), device["secret_hex"], device["key_id"])
    idx = _insert(db.conn, forged, 3)
    checkpoint.create(db.conn, signer, 1)
    out = _export(db_path, tmp_path / "b.json")
    report = _verify(out, signer)
    first = report.first
    assert first is not None and first.entry == idx
    assert "not made by the device" in first.reason and "no es256 line" in first.reason
    assert first.position == f"entry {idx}"
    r = CliRunner().invoke(app, ["ledger", "verify", str(out), "--log-key",
                                 signer.verifier.vkey])
    assert r.exit_code == 1
    assert f"entry {idx}: custody event of wb-1 seq 3 was not made by the device" in r.output


def test_event_signed_by_another_key_or_filed_under_another_channel_fails(
        db: Store, db_path: Path, device: dict[str, Any], signer: note.Signer,
        tmp_path: Path) -> None:
    k = DevKey()
    _honest(db, device, k)
    other_key = _insert(db.conn, evt(device, seq=3, dkey=DevKey()), 3)
    # a weighing on the tele topic (the HMAC binds the topic: the secret makes this too)
    tele = evt(device, seq=4, dkey=None)
    topic = tele.topic.replace("/evt", "/tele")
    from devsig_helpers import hmac_wire

    wire = hmac_wire(bytes.fromhex(device["secret_hex"]), "k1", topic,
                     tele.payload.split(b"\n")[0])
    with transaction(db.conn):
        on_tele = ledger_log.append(db.conn, [entries.device_message(
            device_id="wb-1", channel="tele", topic=topic, seq=4, received_ms=5, wire=wire)])[0]
    out = _export(db_path, tmp_path / "b.json")
    failed = {f.entry: f.reason for f in _verify(out, signer).failures}
    assert "does not verify under the device's registered key" in failed[other_key]
    assert "was not made by the device" in failed[on_tele]


def test_key_replaced_by_an_admin_is_followed_and_reported(
        db: Store, db_path: Path, device: dict[str, Any], signer: note.Signer,
        tmp_path: Path) -> None:
    k, new = DevKey(), DevKey()
    _honest(db, device, k)
    registry.set_device_key(db, "wb-1", new.pub, actor="token:admin-1")
    _commit(db, evt(device, seq=3, dkey=new))
    out = _export(db_path, tmp_path / "b.json")
    report = _verify(out, signer)
    assert report.ok, report.failures
    assert report.device_signed == 3
    assert any("token:admin-1 set the device key of wb-1" in n for n in report.notes)
    # an event signed by the old key after the replacement is not the device's any more
    late = _insert(db.conn, evt(device, seq=4, dkey=k), 4)
    report = _verify(_export(db_path, tmp_path / "b2.json"), signer)
    assert [f.entry for f in report.failures] == [late]


def test_forged_key_decisions_fail(db: Store, db_path: Path, device: dict[str, Any],
                                   signer: note.Signer, tmp_path: Path) -> None:
    k, mine = DevKey(), DevKey()
    _honest(db, device, k)
    with transaction(db.conn):
        # a "birth" registration replacing a key, and one naming the wrong previous key
        bad_birth, bad_chain = ledger_log.append(db.conn, [
            entries.decision(kind=device_keys.DECISION, actor="device:wb-1", time_ms=1,
                             body=device_keys.decision_body("wb-1", mine.pub, "birth", k.pub)),
            entries.decision(kind=device_keys.DECISION, actor="cli:x", time_ms=1,
                             body=device_keys.decision_body("wb-1", mine.pub, "admin", None)),
        ])
    failed = {f.entry: f.reason for f in _verify(_export(db_path, tmp_path / "b.json"),
                                                 signer).failures}
    assert "only an admin replaces a key" in failed[bad_birth]
    assert "but the key registered then was" in failed[bad_chain]


def test_partial_bundle_carries_the_keys_registered_before_it(
        db: Store, db_path: Path, device: dict[str, Any], signer: note.Signer,
        tmp_path: Path) -> None:
    k = DevKey()
    _honest(db, device, k)
    held = checkpoint.create(db.conn, signer, 1)  # the auditor's last checkpoint
    start = held.size
    _commit(db, evt(device, seq=3, dkey=k))
    forged = _insert(db.conn, strip_es256(evt(device, seq=4, dkey=k), device["secret_hex"],
                                          device["key_id"]), 4)
    checkpoint.create(db.conn, signer, 1)
    out = _export(db_path, tmp_path / "part.json", since=start)
    doc = json.loads(out.read_text())
    assert len(doc[device_keys.PRIOR_SECTION]) == 1  # the key wb-1 registered at birth
    report = bundle.verify(out, log_key=signer.verifier.vkey, extends=held.note)
    assert [f.entry for f in report.failures] == [forged], report.failures
    assert report.device_signed == 1
    # a key decision whose proof does not lead to the held root is refused
    doc[device_keys.PRIOR_SECTION][0]["proof"] = [base64.b64encode(b"\0" * 32).decode()]
    out.write_text(json.dumps(doc))
    report = bundle.verify(out, log_key=signer.verifier.vkey, extends=held.note)
    assert any("inclusion proof fails" in f.reason for f in report.failures)
