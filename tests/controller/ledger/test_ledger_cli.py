"""`portwatch ledger …` and `portwatch witness …`: an auditor's session, end to end."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ledger_helpers import append
from typer.testing import CliRunner

from controller.ledger import tree
from tools.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_cli_audit_session_checkpoint_witness_export_verify_and_proofs(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    db, state, out = str(db_path), str(tmp_path / "w"), str(tmp_path / "audit.json")
    append(conn, range(1, 41))
    code, cp, _ = _run("ledger", "checkpoint", "--db", db, "--site", "test-site")
    assert code == 0 and cp.startswith("portwatch/test-site\n40\n")
    code, log_key, _ = _run("ledger", "key", "--db", db)
    log_key = log_key.strip()
    assert code == 0 and log_key.startswith("portwatch/test-site+")
    code, wkey, _ = _run("witness", "init", "--state", state, "--name", "customs.example/w1",
                         "--log-key", log_key)
    assert code == 0 and wkey.startswith("customs.example/w1+")
    assert _run("witness", "cosign", "--state", state, "--db", db)[0] == 0
    append(conn, range(41, 121))
    assert _run("ledger", "checkpoint", "--db", db)[0] == 0
    code, cosigned, _ = _run("witness", "cosign", "--state", state, "--db", db)
    assert code == 0 and "— customs.example/w1 " in cosigned and "\n120\n" in cosigned

    assert _run("ledger", "export", "--out", out, "--db", db)[0] == 0
    code, stdout, _ = _run("ledger", "verify", out, "--log-key", log_key, "--witness-key",
                           wkey.strip(), "--checkpoint", str(tmp_path / "w" / "latest.note"))
    # the log's 2 checkpoints and the one the witness holds, each cosigned
    assert code == 0 and "120 entries, 3 signed checkpoints, 3 witness cosignatures" in stdout

    code, proof, _ = _run("ledger", "prove-inclusion", "--device", "wb-1", "--seq", "17",
                          "--db", db)
    doc = json.loads(proof)
    assert code == 0 and (doc["leaf_index"], doc["tree_size"]) == (16, 120)
    assert doc["view"]["seq"] == 17 and doc["checkpoint"].startswith("portwatch/test-site\n120")
    (tmp_path / "p.json").write_text(proof)
    assert _run("ledger", "check-proof", str(tmp_path / "p.json"), "--log-key", log_key)[0] == 0

    code, consistency, _ = _run("ledger", "prove-consistency", "--old", "40", "--new", "120",
                                "--db", db)
    assert code == 0 and json.loads(consistency)["first_checkpoint"] is not None
    (tmp_path / "c.json").write_text(consistency)
    assert _run("ledger", "check-proof", str(tmp_path / "c.json"), "--log-key", log_key)[0] == 0


def test_cli_verify_exits_nonzero_with_the_first_failure_on_stderr(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    append(conn, range(1, 9))
    _run("ledger", "checkpoint", "--db", str(db_path))
    conn.execute("UPDATE ledger_entries SET entry=(SELECT entry FROM ledger_entries WHERE idx=2)"
                 " WHERE idx=5")
    out = str(tmp_path / "b.json")
    _run("ledger", "export", "--out", out, "--db", str(db_path))
    code, stdout, stderr = _run("ledger", "verify", out)
    assert code == 1 and stdout == ""
    assert "entry 5:" in stderr and "recorded leaf hash" in stderr and "1 more failure" in stderr


def test_cli_check_proof_rejects_an_altered_proof(conn: sqlite3.Connection, db_path: Path,
                                                  tmp_path: Path) -> None:
    append(conn, range(1, 30))
    _run("ledger", "checkpoint", "--db", str(db_path))
    _, proof, _ = _run("ledger", "prove-inclusion", "--index", "7", "--db", str(db_path))
    doc = json.loads(proof)
    doc["inclusion_path"][1] = doc["inclusion_path"][0]
    (tmp_path / "p.json").write_text(json.dumps(doc))
    code, _, stderr = _run("ledger", "check-proof", str(tmp_path / "p.json"))
    assert code == 1 and "does not lead from leaf 7" in stderr


def test_cli_witness_refuses_a_rewritten_log_and_exits_nonzero(
        conn: sqlite3.Connection, db_path: Path, tmp_path: Path) -> None:
    db, state = str(db_path), str(tmp_path / "w")
    append(conn, range(1, 9))
    _run("ledger", "checkpoint", "--db", db)
    _run("witness", "init", "--state", state, "--name", "customs.example/w1", "--db", db)
    assert _run("witness", "cosign", "--state", state, "--db", db)[0] == 0
    # rewrite entry 3 and every hash, then get the log key to sign the result
    conn.execute("UPDATE ledger_entries SET entry=(SELECT entry FROM ledger_entries WHERE idx=4)"
                 " WHERE idx=3")
    rows = conn.execute("SELECT entry FROM ledger_entries ORDER BY idx").fetchall()
    full = tree.MemoryTree([tree.leaf_hash(bytes(r[0])) for r in rows])
    conn.execute("UPDATE ledger_entries SET leaf_hash=? WHERE idx=3", (full.subtree(0, 3),))
    conn.execute("DELETE FROM ledger_nodes")
    conn.executemany("INSERT INTO ledger_nodes VALUES (?,?)",
                     [((lv << 40) | i, h) for lv in range(1, len(full.levels))
                      for i, h in enumerate(full.levels[lv])])
    conn.execute("DELETE FROM ledger_checkpoints")
    append(conn, range(9, 12))
    assert _run("ledger", "checkpoint", "--db", db)[0] == 0
    code, _, stderr = _run("witness", "cosign", "--state", state, "--db", db)
    assert code == 1 and "rewrote or forked" in stderr


def test_cli_prove_inclusion_needs_an_entry(db_path: Path, conn: sqlite3.Connection) -> None:
    append(conn, range(1, 3))
    code, _, stderr = _run("ledger", "prove-inclusion", "--device", "wb-1", "--db",
                           str(db_path))
    assert code == 1 and "--index" in stderr
    code, _, stderr = _run("ledger", "prove-inclusion", "--index", "9", "--db", str(db_path))
    assert code == 1 and "no ledger entry 9" in stderr
