"""Verification an auditor can rely on: required witnesses, a pinned log key and its signed
rotations, forks and moved entries placed exactly, consistency from size 1, partial exports
checked against what the auditor verified before."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from ledger_helpers import ORIGIN, append, rebuild_hashes, weighing
from typer.testing import CliRunner

from controller.ledger import bundle, checkpoint, entries, keys, logkey, note, proofs
from controller.ledger.errors import LedgerError
from controller.ledger.witness import Witness
from controller.storage import ledger_log as ledger_store
from controller.storage import transaction
from tools.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def _cosign(w: Witness, conn: sqlite3.Connection, cp: checkpoint.StoredCheckpoint) -> None:
    last = w.last()
    proof = ledger_store.consistency_proof(conn, last.size, cp.size) if last else []
    checkpoint.add_cosignature(conn, cp.id, w.cosign(cp.note, proof, 1_700_000_000),
                               w.verifier, 1)


@pytest.fixture
def witness(tmp_path: Path, signer: note.Signer) -> Witness:
    return Witness.init(tmp_path / "w1", "customs.example/w1", signer.verifier)


@pytest.fixture
def logged(conn: sqlite3.Connection, signer: note.Signer, witness: Witness) -> sqlite3.Connection:
    """8 weighings, checkpoints at 4 and 8, both cosigned by witness w1."""
    for seqs in (range(1, 5), range(5, 9)):
        append(conn, seqs)
        _cosign(witness, conn, checkpoint.create(conn, signer, 1))
    return conn


def _export(db_path: Path, out: Path, since: int = 0) -> Path:
    bundle.export(db_path, out, since_size=since)
    return out


def _first(report: bundle.Report) -> bundle.Failure:
    assert not report.ok
    assert report.first is not None
    return report.first


# -- witnesses a verify requires -------------------------------------------------------


def test_verify_require_witness_refuses_a_bundle_with_no_cosignature(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer,
        witness: Witness) -> None:
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)  # signed, never cosigned
    out = _export(db_path, tmp_path / "b.json")
    wkey = witness.verifier.vkey
    # --witness-key checks cosignatures where they are; it never demanded one
    assert bundle.verify(out, log_key=signer.verifier.vkey, witness_keys=[wkey]).ok
    first = _first(bundle.verify(out, log_key=signer.verifier.vkey, require_witnesses=[wkey]))
    assert first.position == "checkpoint #0 (size 4)"
    assert "cosigned by 0 of the required witnesses, 1 needed" in first.reason
    assert "customs.example/w1" in first.reason
    code, _, err = _run("ledger", "verify", str(out), "--log-key", signer.verifier.vkey,
                        "--require-witness", wkey)
    assert code == 1 and "cosigned by 0 of the required witnesses" in err


def test_verify_require_witness_counts_a_quorum_on_the_latest_checkpoint(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer,
        witness: Witness) -> None:
    other = Witness.init(tmp_path / "w2", "customs.example/w2", signer.verifier)
    append(logged, range(9, 13))
    checkpoint.create(logged, signer, 1)  # the latest: cosigned by nobody yet
    out = _export(db_path, tmp_path / "b.json")
    both = [witness.verifier.vkey, other.verifier.vkey]
    report = bundle.verify(out, require_witnesses=both, quorum=1)
    assert "checkpoint #2 (size 12)" in _first(report).position  # older cosignatures: no
    _cosign(witness, logged, checkpoint.latest(logged))  # type: ignore[arg-type]
    out = _export(db_path, tmp_path / "b.json")
    one = bundle.verify(out, require_witnesses=both, quorum=1)
    assert one.ok, one.failures
    assert one.witnessed == ["customs.example/w1"]
    first = _first(bundle.verify(out, require_witnesses=both))  # default quorum: all
    assert "cosigned by 1 of the required witnesses, 2 needed (missing: customs.example/w2)" \
        in first.reason
    code, stdout, _ = _run("ledger", "verify", str(out), "--require-witness", both[0],
                           "--require-witness", both[1], "--quorum", "1")
    assert code == 0 and "latest checkpoint cosigned by customs.example/w1" in stdout


# -- the pinned log key and its rotations ----------------------------------------------


def test_a_replaced_log_key_file_is_refused_for_signing(
        conn: sqlite3.Connection, db_path: Path, signer: note.Signer) -> None:
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)
    key_file = checkpoint.key_path(db_path)
    key_file.unlink()
    impostor = checkpoint.log_signer(db_path, ORIGIN)  # a new key in the same file
    assert impostor.verifier != signer.verifier
    append(conn, range(5, 9))
    with pytest.raises(LedgerError, match="is not the key pinned in the store"):
        checkpoint.create(conn, impostor, 2)
    assert checkpoint.latest(conn).size == 4  # type: ignore[union-attr]  # nothing signed
    code, _, err = _run("ledger", "checkpoint", "--db", str(db_path))
    assert code == 1 and "not the key pinned in the store" in err


def test_a_recorded_rotation_is_signed_by_the_old_key_and_followed_by_verify(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    db = str(db_path)
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)
    old = signer.verifier.vkey
    append(conn, range(5, 7))
    code, stdout, err = _run("ledger", "rotate-key", "--db", db, "--reason", "yearly")
    assert code == 0, err
    new = stdout.splitlines()[0]
    assert new != old and f"{old} -> {new}" in err
    assert checkpoint.log_signer(db_path, ORIGIN).verifier.vkey == new  # the file moved on
    assert logkey.retired_key_path(checkpoint.key_path(db_path), signer.verifier).exists()
    rotation = ledger_store.entry(conn, 6)
    assert b"log_key_rotation" in rotation
    # the rotation's own checkpoints: size 6 under the old key, 7 under the new one
    notes = {c.size: c.note for c in checkpoint.all_checkpoints(conn)}
    assert note.parse(notes[6]).verified_by(signer.verifier)
    assert note.parse(notes[7]).verified_by(note.Verifier.parse(new))
    append(conn, range(7, 10))
    assert _run("ledger", "checkpoint", "--db", db)[0] == 0  # the new key signs
    out = _export(db_path, tmp_path / "b.json")
    report = bundle.verify(out, log_key=old)  # the auditor pinned the first key
    assert report.ok, report.failures
    assert any("rotations followed" in n for n in report.notes)
    assert bundle.verify(out, log_key=new).ok  # or got the new one later
    # the old key can no longer sign
    with pytest.raises(LedgerError, match="not the key pinned"):
        checkpoint.create(conn, signer, 3)


def test_verify_refuses_a_rotation_the_old_key_did_not_sign(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)
    # someone with the database but not the key: a rotation signed by a key of their own
    thief = note.Signer(ORIGIN, note.ED25519, keys.create_key(tmp_path / "t.pem"))
    other = note.Signer(ORIGIN, note.ED25519, keys.create_key(tmp_path / "o.pem"))
    body = logkey.rotation_body(other, thief, 4, "takeover")
    body["old_key"] = signer.verifier.vkey
    with transaction(conn):
        ledger_store.append_decision(conn, logkey.ROTATION, "cli:x", body, 5)
        ledger_store.set_meta(conn, "log_key", thief.verifier.vkey)
        ledger_store.set_meta(conn, "log_key_entry", "4")
    checkpoint.key_path(db_path).unlink()
    checkpoint.key_path(db_path).write_bytes((tmp_path / "t.pem").read_bytes())
    cp = checkpoint.create(conn, checkpoint.log_signer(db_path, ORIGIN), 2)  # the store obeys
    assert cp.size == 5
    report = bundle.verify(_export(db_path, tmp_path / "b.json"), log_key=signer.verifier.vkey)
    assert {f.position for f in report.failures} >= {"entry 4", "checkpoint #1 (size 5)"}
    rot = next(f for f in report.failures if f.position == "entry 4")
    assert "signature by the old key does not verify" in rot.reason


def test_an_upgraded_store_pins_the_key_that_signed_it_with_a_decision(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)
    conn.execute("DELETE FROM ledger_meta WHERE name LIKE 'log_key%'")  # as before pinning
    key_file = checkpoint.key_path(db_path)
    saved = key_file.read_bytes()
    key_file.unlink()
    with pytest.raises(LedgerError, match="did not sign this ledger's latest checkpoint"):
        checkpoint.create(conn, checkpoint.log_signer(db_path, ORIGIN), 2)
    key_file.unlink()
    key_file.write_bytes(saved)
    cp = checkpoint.create(conn, signer, 2)
    assert cp.size == 5
    e = entries.decode(ledger_store.entry(conn, 4))
    assert isinstance(e, entries.Decision) and e.decision == "log_key"
    assert e.body["vkey"] == signer.verifier.vkey and "upgrade" in e.body["reason"]
    assert bundle.verify(_export(db_path, tmp_path / "b.json"),
                         log_key=signer.verifier.vkey).ok


# -- forks and moved entries -----------------------------------------------------------


def _fork_at_6(conn: sqlite3.Connection, signer: note.Signer) -> None:
    """Someone with the database and the log key rewrites history from entry 6 and signs
    checkpoints of their own at 7 and 12 (the honest ones at 4 and 8 stay)."""
    conn.execute("DELETE FROM ledger_entries WHERE idx>=6")
    rebuild_hashes(conn)
    append(conn, range(100, 101))
    for size in (7, 12):
        if size == 12:
            append(conn, range(101, 106))
        root = ledger_store.root(conn, size)
        conn.execute("INSERT INTO ledger_checkpoints (size, root, note, created_ms) "
                     "VALUES (?, ?, ?, 2)", (size, root, checkpoint.sign(signer, size, root)))


def test_a_fork_is_not_placed_after_its_first_entry_by_the_forgers_checkpoints(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer,
        witness: Witness) -> None:
    _fork_at_6(logged, signer)
    report = bundle.verify(_export(db_path, tmp_path / "b.json"),
                           witness_keys=[witness.verifier.vkey])
    first = _first(report)
    # the forger's checkpoint at 7 matches the forged entries; trusting it as a starting
    # point would put the fork at entry 7. Only the witnessed checkpoint at 4 is in the
    # history of the honest one at 8
    assert first.position == "checkpoint #1 (size 8)" and (first.entry, first.last) == (4, 7)
    assert "may be the forger's" in first.reason and "size 7" in first.reason


def test_a_fork_is_located_at_its_first_entry_against_the_earlier_bundle(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    earlier = _export(db_path, tmp_path / "earlier.json")  # the auditor's last audit
    assert bundle.verify(earlier, log_key=signer.verifier.vkey).ok
    _fork_at_6(logged, signer)
    later = _export(db_path, tmp_path / "later.json")
    report = bundle.verify(later, log_key=signer.verifier.vkey, extends=earlier.read_text())
    first = _first(report)
    assert (first.position, first.entry, first.last) == ("entry 6", 6, None)
    assert "the log forked at entry 6" in first.reason
    code, _, err = _run("ledger", "verify", str(later), "--extends", str(earlier))
    assert code == 1 and "error: entry 6: the log forked at entry 6" in err


def test_two_swapped_entries_in_a_bundle_are_reported_as_moved_not_missing(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    out = _export(db_path, tmp_path / "b.json")
    doc = json.loads(out.read_text())
    doc["entries"][2], doc["entries"][5] = doc["entries"][5], doc["entries"][2]
    out.write_text(json.dumps(doc))
    report = bundle.verify(out)
    reasons = {f.position: f.reason for f in report.failures}
    assert set(reasons) == {"entry 2", "entry 5"}, report.failures
    assert reasons["entry 5"].startswith("moved: it is item 2 of the bundle")
    assert not any("missing" in r for r in reasons.values())


def test_two_swapped_entries_in_the_store_are_reported_as_moved(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    e2, e5 = ledger_store.entry(logged, 2), ledger_store.entry(logged, 5)
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=2", (e5,))
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=5", (e2,))
    report = bundle.verify(_export(db_path, tmp_path / "b.json"))
    assert _first(report).position == "entry 2"
    moved = [f for f in report.failures if f.reason.startswith("moved")]
    assert {f.entry for f in moved} == {2, 5}
    assert "recorded as entry 5" in moved[0].reason


def test_swapped_entries_with_recomputed_hashes_are_moved_against_the_earlier_bundle(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    earlier = _export(db_path, tmp_path / "earlier.json")
    e2, e5 = ledger_store.entry(logged, 2), ledger_store.entry(logged, 5)
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=2", (e5,))
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=5", (e2,))
    rebuild_hashes(logged)
    report = bundle.verify(_export(db_path, tmp_path / "b.json"), extends=earlier.read_text())
    moved = next(f for f in report.failures if f.position == "entry 2")
    assert "forked at entry 2" in moved.reason and "now entry 5 (moved)" in moved.reason


# -- consistency proofs start at size 1 ------------------------------------------------


def test_a_consistency_proof_from_size_0_is_refused(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    append(conn, range(1, 5))
    checkpoint.create(conn, signer, 1)
    with pytest.raises(LedgerError, match="from size 1"):
        proofs.consistency(conn, 0, 4)
    doc = proofs.consistency(conn, 1, 4)
    assert proofs.check(doc, signer.verifier) == []
    doc.update(first=0, first_root=doc["second_root"], consistency_path=[],
               first_checkpoint=None)
    assert any("from size 1" in p for p in proofs.check(doc, signer.verifier))
    path = tmp_path / "c.json"
    path.write_text(json.dumps(doc))
    code, _, err = _run("ledger", "check-proof", str(path))
    assert code == 1 and "from size 1" in err
    code, _, err = _run("ledger", "prove-consistency", "--old", "0", "--db", str(db_path))
    assert code != 0 and "--old" in err


# -- partial exports -------------------------------------------------------------------


def test_a_partial_export_is_verified_against_the_checkpoint_it_extends(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    held = tmp_path / "last.note"  # what the auditor's previous audit ended with
    held.write_text(checkpoint.latest(logged).note)  # type: ignore[union-attr]
    append(logged, range(9, 13))
    checkpoint.create(logged, signer, 2)
    out = tmp_path / "since8.json"
    code, _, err = _run("ledger", "export", "--out", str(out), "--db", str(db_path),
                        "--since-checkpoint", str(held))
    assert code == 0 and "entries 8..11" in err
    doc = json.loads(out.read_text())
    assert (doc["start"], len(doc["entries"]), len(doc["prefix"])) == (8, 4, 1)
    assert [c.split("\n")[1] for c in doc["checkpoints"]] == ["8", "12"]
    report = bundle.verify(out, log_key=signer.verifier.vkey, extends=held.read_text())
    assert report.ok, report.failures
    assert (report.start, report.size, report.extends) == (8, 12, 8)
    code, stdout, _ = _run("ledger", "verify", str(out), "--log-key", signer.verifier.vkey,
                           "--extends", str(held))
    assert code == 0 and "entries 8..11" in stdout and "extends the size-8 tree" in stdout
    # without what it extends, its first 8 entries are only hashes: refused
    alone = _first(bundle.verify(out, log_key=signer.verifier.vkey))
    assert alone.position == "prefix" and "--extends" in alone.reason


def test_a_partial_export_that_does_not_extend_the_held_checkpoint_is_refused(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    held = checkpoint.latest(logged).note  # type: ignore[union-attr]  # size 8
    earlier = _export(db_path, tmp_path / "earlier.json")
    # entry 3 rewritten with every hash recomputed, and the log re-signed from scratch
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=3", (weighing(33),))
    rebuild_hashes(logged)
    logged.execute("DELETE FROM ledger_cosignatures")
    logged.execute("DELETE FROM ledger_checkpoints")
    append(logged, range(9, 13))
    checkpoint.create(logged, signer, 2)
    out = _export(db_path, tmp_path / "since8.json", since=8)
    first = _first(bundle.verify(out, log_key=signer.verifier.vkey, extends=held))
    assert first.position == "extends" and "does not extend the checkpoint you hold" in \
        first.reason and (first.entry, first.last) == (0, 7)
    vs_bundle = _first(bundle.verify(out, log_key=signer.verifier.vkey,
                                     extends=earlier.read_text()))
    assert vs_bundle.position == "extends" and "before entry 8" in vs_bundle.reason
    # a partial bundle that starts after what the auditor holds cannot be checked
    later = _export(db_path, tmp_path / "since10.json", since=10)
    gap = _first(bundle.verify(later, log_key=signer.verifier.vkey, extends=held))
    assert gap.position == "extends" and "--since-checkpoint" in gap.reason
