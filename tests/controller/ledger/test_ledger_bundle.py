"""Export and offline verification: an honest log verifies; each kind of tampering with the
store (by someone with write access to it, and sometimes the log key) is caught and placed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from ledger_helpers import append, rebuild_hashes, weighing

from controller.ledger import bundle, checkpoint, note
from controller.ledger.witness import Witness
from controller.storage import ledger_log as ledger_store
from controller.storage import transaction


@pytest.fixture
def witness(tmp_path: Path, signer: note.Signer) -> Witness:
    return Witness.init(tmp_path / "witness", "customs.example/w1", signer.verifier)


@pytest.fixture
def logged(conn: sqlite3.Connection, signer: note.Signer, witness: Witness) -> sqlite3.Connection:
    """12 entries (10 weighings, 2 decisions), checkpoints at 4, 8, 12, each cosigned."""
    for seqs in (range(1, 5), range(5, 9), range(9, 11)):
        append(conn, seqs)
        if len(seqs) == 2:
            with transaction(conn):
                ledger_store.append_decision(conn, "rejection", "controller",
                                             {"reason": "bad_signature"}, 10)
                ledger_store.append_decision(conn, "alert", "rules", {"alarm": "overload"}, 11)
        cp = checkpoint.create(conn, signer, 1)
        last = witness.last()
        proof = ledger_store.consistency_proof(conn, last.size, cp.size) if last else []
        checkpoint.add_cosignature(conn, cp.id, witness.cosign(cp.note, proof, 1_700_000_000),
                                   witness.verifier, 1)
    return conn


def _verify(db_path: Path, tmp_path: Path, **kw: object) -> bundle.Report:
    out = tmp_path / "bundle.json"
    bundle.export(db_path, out)
    return bundle.verify(out, **kw)  # type: ignore[arg-type]


def _first(report: bundle.Report) -> bundle.Failure:
    assert not report.ok
    first = report.first
    assert first is not None
    return first


def test_bundle_of_an_honest_log_verifies_with_pinned_keys(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer,
        witness: Witness) -> None:
    report = _verify(db_path, tmp_path, log_key=signer.verifier.vkey,
                     witness_keys=[witness.verifier.vkey])
    assert report.ok, report.failures
    assert (report.entries, report.checkpoints, report.cosignatures) == (12, 3, 3)
    assert report.root == ledger_store.root(logged)
    doc = json.loads((tmp_path / "bundle.json").read_text())
    assert doc["log_key"] == signer.verifier.vkey
    assert doc["witness_keys"] == [witness.verifier.vkey]


def test_bundle_detects_an_edited_entry_at_its_index(logged: sqlite3.Connection,
                                                     db_path: Path, tmp_path: Path) -> None:
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=5", (weighing(66),))
    first = _first(_verify(db_path, tmp_path))
    assert (first.position, first.entry) == ("entry 5", 5)
    assert "recorded leaf hash" in first.reason


def test_bundle_places_an_edit_with_recomputed_hashes_between_two_checkpoints(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=5", (weighing(66),))
    rebuild_hashes(logged)
    first = _first(_verify(db_path, tmp_path))
    assert first.position == "checkpoint #1 (size 8)" and first.entry == 4
    assert "an entry in 4..7 was edited" in first.reason


def test_bundle_detects_a_deleted_entry_at_its_index(logged: sqlite3.Connection,
                                                     db_path: Path, tmp_path: Path) -> None:
    logged.execute("DELETE FROM ledger_entries WHERE idx=6")
    first = _first(_verify(db_path, tmp_path))
    assert (first.position, first.entry) == ("entry 6", 6)
    assert "is missing: the bundle goes from entry 5 to entry 7" in first.reason


def test_bundle_places_a_deletion_hidden_by_renumbering(logged: sqlite3.Connection,
                                                        db_path: Path, tmp_path: Path) -> None:
    logged.execute("DELETE FROM ledger_entries WHERE idx=6")
    logged.execute("UPDATE ledger_entries SET idx=idx-1 WHERE idx>6")
    rebuild_hashes(logged)
    report = _verify(db_path, tmp_path)
    first = _first(report)
    assert first.position == "checkpoint #1 (size 8)" and "4..7" in first.reason
    assert any("entry 11 was removed" in f.reason for f in report.failures)


def test_bundle_detects_two_reordered_entries_at_the_first(logged: sqlite3.Connection,
                                                           db_path: Path,
                                                           tmp_path: Path) -> None:
    e2, e9 = ledger_store.entry(logged, 2), ledger_store.entry(logged, 9)
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=2", (e9,))
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=9", (e2,))
    report = _verify(db_path, tmp_path)
    assert (_first(report).position, _first(report).entry) == ("entry 2", 2)
    assert {f.position for f in report.failures if f.position.startswith("entry")} == \
        {"entry 2", "entry 9"}


def test_bundle_places_a_reordering_with_recomputed_hashes(logged: sqlite3.Connection,
                                                           db_path: Path,
                                                           tmp_path: Path) -> None:
    e2, e9 = ledger_store.entry(logged, 2), ledger_store.entry(logged, 9)
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=2", (e9,))
    logged.execute("UPDATE ledger_entries SET entry=? WHERE idx=9", (e2,))
    rebuild_hashes(logged)
    first = _first(_verify(db_path, tmp_path))
    assert first.position == "checkpoint #0 (size 4)" and "0..3" in first.reason


def _fork(conn: sqlite3.Connection, signer: note.Signer) -> None:
    """Truncate to 6 entries, append 6 others, sign the new head with the log's own key."""
    conn.execute("DELETE FROM ledger_entries WHERE idx>=6")
    rebuild_hashes(conn)
    append(conn, range(100, 106))
    with pytest.raises(Exception, match="refusing to sign"):  # the log itself will not
        checkpoint.create(conn, signer, 2)
    text = checkpoint.sign(signer, 12, ledger_store.root(conn, 12))
    conn.execute("INSERT INTO ledger_checkpoints (size, root, note, created_ms) "
                 "VALUES (12, ?, ?, 2)", (ledger_store.root(conn, 12), text))


def test_bundle_detects_a_truncated_then_extended_log_as_a_fork(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    _fork(logged, signer)
    report = _verify(db_path, tmp_path)
    first = _first(report)
    assert first.position == "checkpoint #1 (size 8)" and "4..7" in first.reason
    assert "forked history" in first.reason and "checkpoint #3 (size 12)" in first.reason
    assert any("two histories" in f.reason for f in report.failures)


def test_bundle_fork_with_old_checkpoints_deleted_is_caught_by_the_witness_copy(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    _fork(logged, signer)
    logged.execute("DELETE FROM ledger_checkpoints WHERE id IN (2, 3)")
    logged.execute("DELETE FROM ledger_cosignatures WHERE checkpoint_id IN (2, 3)")
    assert _verify(db_path, tmp_path).ok  # the rewritten log is self-consistent...
    held = (tmp_path / "witness" / "latest.note").read_text()
    report = bundle.verify(tmp_path / "bundle.json", checkpoints=[held])
    first = _first(report)  # ...but not with the checkpoint the witness holds
    assert first.position == "supplied checkpoint #0 (size 12)" and "4..11" in first.reason


def test_bundle_detects_a_swapped_checkpoint_signature(logged: sqlite3.Connection,
                                                       db_path: Path, tmp_path: Path) -> None:
    notes = [c.note for c in checkpoint.all_checkpoints(logged)]
    sig0 = notes[0].split("\n\n")[1]
    swapped = notes[1].split("\n\n")[0] + "\n\n" + sig0
    logged.execute("UPDATE ledger_checkpoints SET note=? WHERE id=2", (swapped,))
    first = _first(_verify(db_path, tmp_path))
    assert first.position == "checkpoint #1 (size 8)"
    assert "log's signature does not verify" in first.reason


def test_bundle_detects_a_replaced_log_key_when_the_key_is_pinned(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, signer: note.Signer) -> None:
    out = tmp_path / "bundle.json"
    bundle.export(db_path, out)
    impostor = checkpoint.log_signer(tmp_path / "impostor.db", signer.name)
    doc = json.loads(out.read_text())
    doc["log_key"] = doc["log_key_at_start"] = impostor.verifier.vkey
    doc["checkpoints"] = [checkpoint.sign(impostor, 12, ledger_store.root(logged, 12))]
    out.write_text(json.dumps(doc))
    assert bundle.verify(out).ok  # trusting the bundle's own key proves nothing
    first = _first(bundle.verify(out, log_key=signer.verifier.vkey))
    assert first.position == "log key"


def test_bundle_detects_a_truncated_log(logged: sqlite3.Connection, db_path: Path,
                                        tmp_path: Path) -> None:
    logged.execute("DELETE FROM ledger_entries WHERE idx>=9")
    first = _first(_verify(db_path, tmp_path))
    assert first.position == "checkpoint #2 (size 12)" and first.entry == 9
    assert "entries 9..11 were removed" in first.reason


def test_bundle_detects_an_altered_witness_cosignature(
        logged: sqlite3.Connection, db_path: Path, tmp_path: Path, witness: Witness) -> None:
    line = logged.execute("SELECT line FROM ledger_cosignatures WHERE checkpoint_id=3"
                          ).fetchone()[0]
    other = logged.execute("SELECT line FROM ledger_cosignatures WHERE checkpoint_id=1"
                           ).fetchone()[0]
    assert line != other
    logged.execute("UPDATE ledger_cosignatures SET line=? WHERE checkpoint_id=3", (other,))
    first = _first(_verify(db_path, tmp_path, witness_keys=[witness.verifier.vkey]))
    assert first.position == "checkpoint #2 (size 12)" and "customs.example/w1" in first.reason


def test_bundle_detects_an_entry_edited_in_the_bundle_file(logged: sqlite3.Connection,
                                                           db_path: Path,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    bundle.export(db_path, out)
    doc = json.loads(out.read_text())
    doc["entries"][3]["entry"] = doc["entries"][4]["entry"]
    out.write_text(json.dumps(doc))
    assert (_first(bundle.verify(out)).position) == "entry 3"


def test_bundle_that_is_not_a_bundle_fails_readably(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    assert "not a portwatch-ledger-bundle/1" in str(_first(bundle.verify(path)))
