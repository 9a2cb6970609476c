"""Interoperation with an independent c2sp.org/tlog-witness implementation from PyPI:
aics-witness 0.1.0 (witness server and log-side feeder, tlog-witness v1.1.0) on aics-tlog
0.2.1 (signed notes, checkpoints, cosignatures, RFC 9162 trees), both written apart from
portwatch. They need Python >= 3.12, so scripts/setup.sh installs them into .venv-interop
(PW_INTEROP_PYTHON overrides the interpreter).

- portwatch's controller pushes its checkpoints (and consistency proofs) to an aics-witness
  process, stores the cosignatures it returns, and `ledger verify --witness-key` accepts them;
- an aics-tlog log feeds `portwatch witness serve` with aics_witness.feeder.WitnessClient,
  which verifies every cosignature itself; a forked checkpoint is refused with 422.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ledger_helpers import append
from typer.testing import CliRunner

from controller import witness_push
from controller.ledger import checkpoint, note
from controller.ledger.witness import Witness
from controller.storage import Store
from controller.storage import witnesses as witness_rows
from tools.cli import app
from tools.procs import free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).parent
PYTHON = Path(os.environ.get("PW_INTEROP_PYTHON", ROOT / ".venv-interop" / "bin" / "python"))
AICS_BIN = PYTHON.parent / "aics-witness"

pytestmark = pytest.mark.skipif(
    not AICS_BIN.exists(),
    reason=f"no independent tlog-witness at {AICS_BIN}: run scripts/setup.sh (needs a "
           "Python >= 3.12 for aics-witness)")


def _run(*args: str) -> str:
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def aics_witness(tmp_path: Path, signer: note.Signer) -> Iterator[tuple[str, str]]:
    """An aics-witness process trusting portwatch's log key: (URL, its vkey)."""
    config = tmp_path / "aics" / "witness.json"
    config.parent.mkdir()
    vkey = _run(AICS_BIN, "init", "--config", config, "--name",
                "witness.example.org/aics").strip().splitlines()[-1]
    _run(AICS_BIN, "add-log", "--config", config, "--origin", signer.name, "--vkey",
         signer.verifier.vkey)
    port = free_port()
    proc = subprocess.Popen([str(AICS_BIN), "serve", "--config", str(config), "--listen",
                             f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, timeout=20,
                   what="aics-witness answering /healthz")
        yield url, vkey
    finally:
        stop_process(proc)


def test_an_independent_witness_cosigns_portwatch_checkpoints(
        db: Store, db_path: Path, signer: note.Signer, aics_witness: tuple[str, str]) -> None:
    url, vkey = aics_witness
    conn = db.conn
    witness_push.add_witness(db, vkey, url, actor="test")
    pusher = witness_push.WitnessPusher(db_path)

    async def step() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await pusher.step(client)

    sizes = []
    for start, n in ((1, 5), (6, 9), (15, 1)):  # first from size 0, then with proofs
        append(conn, range(start, start + n))
        cp = checkpoint.create(conn, signer, start)
        asyncio.run(step())
        status = pusher.status["witness.example.org/aics"]
        assert status.failures == 0, status.last_error
        assert witness_rows.cosigned_size(conn, vkey) == cp.size
        sizes.append(cp.size)
    assert sizes == sorted(set(sizes))
    out = db_path.parent / "bundle.json"
    runner = CliRunner()
    assert runner.invoke(app, ["ledger", "export", "--out", str(out), "--db",
                               str(db_path)]).exit_code == 0
    r = runner.invoke(app, ["ledger", "verify", str(out), "--witness-key", vkey])
    assert r.exit_code == 0, r.output
    assert "3 witness cosignatures" in r.output


def test_portwatch_witness_cosigns_an_independent_log(tmp_path: Path) -> None:
    origin = "example.org/aics-log"
    seed = tmp_path / "log.seed"
    log_vkey = _run(PYTHON, HERE / "interop_aics.py", "vkey", seed, origin).strip()
    state = tmp_path / "pw-witness"
    Witness.init(state, "customs.example/w1", note.Verifier.parse(log_vkey))
    wvkey = Witness.open(state).verifier.vkey
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "witness", "serve", "--state",
                             str(state), "--listen", f"127.0.0.1:{port}"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(url + "/healthz").status_code == 200, timeout=20,
                   what="portwatch witness answering /healthz")
        out = _run(PYTHON, HERE / "interop_aics.py", "feed", seed, origin, url, wvkey,
                   "3,8,8,21")
        results = [json.loads(line) for line in out.splitlines()]
        assert [r["size"] for r in results] == [3, 8, 8, 21]
        assert all("cosignature" in r for r in results), results
        for r in results:  # and portwatch's own reader agrees
            signed = note.parse(r["note"]).with_line(r["cosignature"])
            assert signed.verified_by(Witness.open(state).verifier) is True
        # a fork of the same log (entry 2 rewritten) gets no cosignature, at any size
        out = _run(PYTHON, HERE / "interop_aics.py", "feed", seed, origin, url, wvkey,
                   "21,30", "--fork-at", "2")
        refused = [json.loads(line) for line in out.splitlines()]
        assert [(r["size"], r["status"]) for r in refused] == [(21, 422), (30, 422)], refused
        assert json.loads((state / "state.json").read_text())["size"] == 21
    finally:
        stop_process(proc)
