"""The ledger tables: append inside the caller's transaction, roots, proofs, checkpoints."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from ledger_helpers import ORIGIN, append, rebuild_hashes, weighing

from controller.ledger import bench, checkpoint, entries, note, tree
from controller.ledger.errors import EntryFormatError, LedgerError
from controller.storage import ledger_log as ledger_store
from controller.storage import open_store, transaction

REPO = Path(__file__).resolve().parents[3]


def _memory_root(conn: sqlite3.Connection, n: int) -> bytes:
    rows = conn.execute("SELECT entry FROM ledger_entries WHERE idx<? ORDER BY idx", (n,))
    return tree.root(tree.MemoryTree([tree.leaf_hash(bytes(r[0])) for r in rows]), n)


def test_ledger_append_returns_consecutive_indexes_from_zero(conn: sqlite3.Connection) -> None:
    assert append(conn, range(1, 4)) == [0, 1, 2]
    assert append(conn, range(4, 6)) == [3, 4]
    assert ledger_store.size(conn) == 5
    assert ledger_store.entry(conn, 3) == weighing(4)


def test_ledger_append_outside_a_transaction_is_refused(conn: sqlite3.Connection) -> None:
    with pytest.raises(LedgerError, match="inside the caller's transaction"):
        ledger_store.append(conn, [weighing(1)])
    assert ledger_store.size(conn) == 0


def test_ledger_append_rolls_back_with_the_outer_transaction(conn: sqlite3.Connection) -> None:
    append(conn, range(1, 3))
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO messages (device_id, seq, payload) VALUES ('wb-1', 3, x'00')")
    assert ledger_store.append(conn, [weighing(3)]) == [2]
    ledger_store.append_decision(conn, "alert", "rules", {"x": 1}, 5)
    conn.execute("ROLLBACK")
    assert ledger_store.size(conn) == 2
    assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM ledger_nodes").fetchone()[0] == 1  # (0,1) only
    assert append(conn, range(3, 4)) == [2]  # the rolled-back index is reused: no gap
    assert ledger_store.root(conn) == _memory_root(conn, 3)


def test_ledger_append_refuses_bytes_that_are_not_an_entry(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(EntryFormatError):
        ledger_store.append(conn, [weighing(1), b"not an entry"])
    conn.execute("ROLLBACK")
    assert ledger_store.size(conn) == 0


def test_ledger_append_decision_records_kind_actor_and_body(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        idx = ledger_store.append_decision(conn, "key_rotation", "cli:ops",
                                           {"device_id": "wb-1", "new_key_id": "k2"}, 1234)
    e = entries.decode(ledger_store.entry(conn, idx))
    assert isinstance(e, entries.Decision)
    assert (e.decision, e.actor, e.time_ms, e.body["new_key_id"]) == ("key_rotation",
                                                                     "cli:ops", 1234, "k2")
    row = conn.execute("SELECT kind, subkind FROM ledger_entries WHERE idx=?", (idx,)).fetchone()
    assert tuple(row) == ("decision", "key_rotation")


def test_ledger_roots_and_proofs_from_the_store_match_a_full_rebuild(
        conn: sqlite3.Connection) -> None:
    rng, seq = random.Random(3), 1
    while seq < 300:
        n = rng.randint(1, 37)
        append(conn, range(seq, seq + n))
        seq += n
        assert ledger_store.root(conn) == _memory_root(conn, seq - 1)
    size = ledger_store.size(conn)
    for n in (1, 2, 63, 64, 65, size):
        root = _memory_root(conn, n)
        assert ledger_store.root(conn, n) == root
        for m in {0, n // 3, n - 1}:
            leaf = tree.leaf_hash(ledger_store.entry(conn, m))
            assert tree.verify_inclusion(m, n, leaf, ledger_store.inclusion_proof(conn, m, n),
                                         root)
        for m in {1, n // 2, n}:
            assert tree.verify_consistency(m, n, _memory_root(conn, m), root,
                                           ledger_store.consistency_proof(conn, m, n))
    with pytest.raises(LedgerError, match="out of range"):
        ledger_store.root(conn, size + 1)


def test_ledger_find_message_finds_a_custody_event(conn: sqlite3.Connection) -> None:
    append(conn, range(1, 5), device="wb-1")
    append(conn, range(1, 5), device="wb-2")
    assert ledger_store.find_message(conn, "wb-2", 3) == 6
    assert ledger_store.find_message(conn, "wb-2", 9) is None


def test_ledger_migration_is_idempotent_and_called_by_the_store(db_path: Path) -> None:
    open_store(db_path, create=True)
    db = open_store(db_path, create=True)
    assert {"ledger_entries", "ledger_nodes", "ledger_checkpoints", "ledger_cosignatures",
            "ledger_meta"} <= set(db.db.table_names())


def test_ledger_checkpoint_signs_size_and_root_with_a_private_key_file(
        conn: sqlite3.Connection, db_path: Path, signer: note.Signer) -> None:
    append(conn, range(1, 11))
    cp = checkpoint.create(conn, signer, 99)
    text = note.parse(cp.note)
    assert text.verified_by(signer.verifier) is True
    parsed = checkpoint.Checkpoint.parse(text.text)
    assert (parsed.origin, parsed.size, parsed.root) == (ORIGIN, 10, _memory_root(conn, 10))
    key = checkpoint.key_path(db_path)
    assert key.name == "pw.db.ledger-key.pem" and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert checkpoint.create(conn, signer, 100) == cp  # same size: the same checkpoint
    assert ledger_store.get_meta(conn, "origin") == ORIGIN


def test_ledger_checkpoint_refuses_another_origin(conn: sqlite3.Connection, db_path: Path,
                                                  signer: note.Signer) -> None:
    checkpoint.create(conn, signer, 1)
    with pytest.raises(LedgerError, match="origin"):
        checkpoint.create(conn, checkpoint.log_signer(db_path, "portwatch/other"), 2)


def test_ledger_checkpoint_refuses_to_sign_over_an_altered_store(
        conn: sqlite3.Connection, signer: note.Signer) -> None:
    append(conn, range(1, 9))
    checkpoint.create(conn, signer, 1)
    append(conn, range(9, 12))
    conn.execute("UPDATE ledger_entries SET entry=? WHERE idx=3", (weighing(99),))
    rebuild_hashes(conn)
    with pytest.raises(LedgerError, match="refusing to sign"):
        checkpoint.create(conn, signer, 2)
    assert len(checkpoint.all_checkpoints(conn)) == 1


def test_ledger_maybe_checkpoint_waits_for_the_interval_and_for_growth(
        conn: sqlite3.Connection, signer: note.Signer) -> None:
    append(conn, range(1, 3))
    assert checkpoint.maybe_create(conn, signer, 1_000, every_ms=500) is not None
    append(conn, range(3, 5))
    assert checkpoint.maybe_create(conn, signer, 1_400, every_ms=500) is None  # too soon
    made = checkpoint.maybe_create(conn, signer, 1_500, every_ms=500)
    assert made is not None and made.size == 4
    assert checkpoint.maybe_create(conn, signer, 9_000, every_ms=500) is None  # no growth


def test_ledger_append_rate_helper_reports_entries_per_second() -> None:
    r = bench.append_rate(2_000, batch=500)
    assert r["entries"] == 2_000 and r["per_s"] > 1_000


_WRITER = textwrap.dedent("""
    import sys
    from controller.ledger import bench
    from controller.storage import ledger_log as ledger_store, open_store
    conn = open_store(sys.argv[1], create=True).conn
    seq = 1
    while True:
        conn.execute("BEGIN IMMEDIATE")
        ledger_store.append(conn, [bench.sample_entry(s) for s in range(seq, seq + 200)])
        conn.execute("COMMIT")
        seq += 200
""")


def test_ledger_survives_a_writer_killed_mid_append(db_path: Path) -> None:
    open_store(db_path, create=True).conn.close()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db_path)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        probe = sqlite3.connect(db_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if probe.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] >= 3_000:
                break
            time.sleep(0.02)
        probe.close()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    conn = open_store(db_path, create=True).conn
    n = ledger_store.size(conn)
    assert n >= 3_000 and n % 200 == 0  # whole batches only
    assert conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == n  # no gap
    assert ledger_store.root(conn) == _memory_root(conn, n)
    assert append(conn, range(1, 2)) == [n]  # and it goes on from there
