"""The witness cosigns only what is consistent with what it cosigned before."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from ledger_helpers import ORIGIN, append, rebuild_hashes, weighing

from controller.ledger import checkpoint, note
from controller.ledger.errors import LedgerError, WitnessRefused
from controller.ledger.witness import Witness
from controller.storage import ledger_log as ledger_store


def _cosign(w: Witness, conn: sqlite3.Connection, now_s: int = 1_700_000_000) -> str:
    cp = checkpoint.latest(conn)
    assert cp is not None
    last = w.last()
    proof = ledger_store.consistency_proof(conn, last.size, cp.size) if last else []
    line = w.cosign(cp.note, proof, now_s)
    checkpoint.add_cosignature(conn, cp.id, line, w.verifier, 1)
    return line


@pytest.fixture
def witness(tmp_path: Path, signer: note.Signer) -> Witness:
    return Witness.init(tmp_path / "witness", "customs.example/w1", signer.verifier)


def test_witness_cosigns_a_growing_log_and_keeps_its_state(
        witness: Witness, conn: sqlite3.Connection, signer: note.Signer, tmp_path: Path) -> None:
    for start in (1, 6, 20):
        append(conn, range(start, start + 5 + start))
        checkpoint.create(conn, signer, start)
        _cosign(witness, conn)
    again = Witness.open(tmp_path / "witness")
    last = again.last()
    latest = checkpoint.latest(conn)
    assert last is not None and latest is not None
    assert (last.size, last.root) == (latest.size, latest.root)
    held = note.parse((tmp_path / "witness" / "latest.note").read_text())
    assert held.verified_by(signer.verifier) and held.verified_by(witness.verifier)
    assert note.parse(checkpoint.cosigned_note(conn, latest)).verified_by(witness.verifier)
    key = tmp_path / "witness" / "witness-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_witness_refuses_a_forked_history(witness: Witness, conn: sqlite3.Connection,
                                          signer: note.Signer) -> None:
    append(conn, range(1, 9))
    checkpoint.create(conn, signer, 1)
    _cosign(witness, conn)
    # someone with the database and the log key rewrites entry 5 and signs a new head
    conn.execute("UPDATE ledger_entries SET entry=? WHERE idx=5", (weighing(55),))
    rebuild_hashes(conn)
    append(conn, range(9, 13))
    forged = checkpoint.sign(signer, 12, ledger_store.root(conn, 12))
    proof = ledger_store.consistency_proof(conn, 8, 12)
    with pytest.raises(WitnessRefused, match="not consistent with size 8"):
        witness.cosign(forged, proof, 1_700_000_100)
    last = witness.last()
    assert last is not None and last.size == 8  # the witness did not move


def test_witness_refuses_a_truncated_log(witness: Witness, conn: sqlite3.Connection,
                                         signer: note.Signer) -> None:
    append(conn, range(1, 9))
    checkpoint.create(conn, signer, 1)
    _cosign(witness, conn)
    smaller = checkpoint.sign(signer, 5, ledger_store.root(conn, 5))
    with pytest.raises(WitnessRefused, match="never shrinks"):
        witness.cosign(smaller, [], 1_700_000_100)


def test_witness_refuses_what_the_pinned_log_key_did_not_sign(
        witness: Witness, conn: sqlite3.Connection, tmp_path: Path) -> None:
    append(conn, range(1, 4))
    impostor = checkpoint.log_signer(tmp_path / "other.db", ORIGIN)  # same name, other key
    with pytest.raises(WitnessRefused, match="not signed by the pinned log key"):
        witness.cosign(checkpoint.sign(impostor, 3, ledger_store.root(conn, 3)), [], 1)
    stranger = checkpoint.log_signer(tmp_path / "other.db", "portwatch/elsewhere")
    with pytest.raises(WitnessRefused, match="origin"):
        witness.cosign(checkpoint.sign(stranger, 3, ledger_store.root(conn, 3)), [], 1)
    assert witness.last() is None


def test_witness_init_refuses_an_existing_witness(witness: Witness, tmp_path: Path,
                                                  signer: note.Signer) -> None:
    with pytest.raises(LedgerError, match="already holds a witness"):
        Witness.init(tmp_path / "witness", "customs.example/w2", signer.verifier)


def test_witness_cosignature_timestamps_never_go_back(
        witness: Witness, conn: sqlite3.Connection, signer: note.Signer) -> None:
    append(conn, range(1, 3))
    checkpoint.create(conn, signer, 1)
    _cosign(witness, conn, now_s=2_000)
    append(conn, range(3, 5))
    checkpoint.create(conn, signer, 2)
    _cosign(witness, conn, now_s=1_000)  # the witness clock stepped back
    last = witness.last()
    assert last is not None and last.timestamp == 2_000
