"""The controller pushes its checkpoints to a real `portwatch witness serve` process.

Time is the pusher's injected clock: back-off and the uncosigned alarm are driven by it,
and every wait is on a condition (tools.procs.wait_until), never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ledger_helpers import ORIGIN, append
from typer.testing import CliRunner

from controller import witness_push
from controller.errors import InvalidInput
from controller.ledger import checkpoint, keys, note
from controller.ledger.witness import Witness
from controller.ledger.witness_protocol import format_request
from controller.storage import Store, open_store
from controller.storage import ledger_log as ledger_store
from controller.storage import supervision as alert_rows
from controller.storage import witnesses as witness_rows
from controller.storage.schema import SCHEMA_VERSION
from tools.cli import app
from tools.procs import free_port, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[3]
NAME = "customs.example/dalian-dest"


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


class WitnessProcess:
    """`portwatch witness serve` in its own process, on its own state directory."""

    def __init__(self, state: Path, port: int) -> None:
        self.state, self.port = state, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tools.cli", "witness", "serve", "--state", str(self.state),
             "--listen", f"127.0.0.1:{self.port}"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_until(lambda: httpx.get(self.url + "/healthz").status_code == 200, timeout=20,
                   what="the witness answering /healthz")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


@pytest.fixture
def wproc(tmp_path: Path, signer: note.Signer) -> Iterator[WitnessProcess]:
    Witness.init(tmp_path / "witness", NAME, signer.verifier)
    w = WitnessProcess(tmp_path / "witness", free_port())
    yield w
    w.stop()


def _step(pusher: witness_push.WitnessPusher) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            await pusher.step(client)
    asyncio.run(go())


def _active(db: Store) -> list[dict[str, object]]:
    return [a for a in alert_rows.list_alerts(db, active=True)
            if a["code"] == witness_push.CODE]


def _decisions(conn: sqlite3.Connection, kind: str) -> list[str]:
    return [data.decode(errors="replace") for _, data, _ in ledger_store.iter_entries(conn)
            if kind.encode() in data]


def test_pushes_retries_while_down_alarms_and_clears(
        db: Store, db_path: Path, signer: note.Signer, wproc: WitnessProcess) -> None:
    conn = db.conn
    append(conn, range(1, 6))
    cp = checkpoint.create(conn, signer, 1_000_000)
    vkey = Witness.open(wproc.state).verifier.vkey
    witness_push.add_witness(db, vkey, wproc.url, actor="test")
    clock = Clock(1_000_000)
    pusher = witness_push.WitnessPusher(
        db_path, witness_push.PushSettings(uncosigned_after_s=30, backoff_min_s=2), clock=clock)

    _step(pusher)  # the witness is not running yet
    st = pusher.status[NAME]
    assert st.failures == 1 and "unreachable" in st.last_error
    assert st.next_try_ms == clock.ms + 2000
    _step(pusher)  # backing off: no new attempt
    assert st.failures == 1
    clock.ms += 2000
    _step(pusher)
    assert st.failures == 2 and st.next_try_ms == clock.ms + 4000  # doubled
    assert _active(db) == []

    clock.ms = cp.created_ms + 30_001  # past uncosigned_after_s, still down
    _step(pusher)
    [alert] = _active(db)
    assert alert["severity"] == "critical" and alert["subject"] == NAME
    assert any('"action":"raise"' in d and witness_push.CODE in d
               for d in _decisions(conn, "alert"))

    wproc.start()
    clock.ms += 60_000
    _step(pusher)
    assert witness_rows.cosigned_size(conn, vkey) == cp.size
    assert _active(db) == []  # cleared once cosigned
    assert any('"action":"clear"' in d for d in _decisions(conn, "alert"))
    assert note.parse(checkpoint.cosigned_note(conn, cp)).verified_by(
        note.Verifier.parse(vkey)) is True

    # the ledger grows (the alert decisions too): the next push carries the old size and a
    # consistency proof from it
    append(conn, range(6, 9))
    cp2 = checkpoint.create(conn, signer, clock.ms)
    _step(pusher)
    assert witness_rows.cosigned_size(conn, vkey) == cp2.size
    state = json.loads((wproc.state / "state.json").read_text())
    assert state["size"] == cp2.size

    # an auditor's offline check sees the witness's cosignatures with its key
    out = db_path.parent / "bundle.json"
    runner = CliRunner()
    r = runner.invoke(app, ["ledger", "export", "--out", str(out), "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ledger", "verify", str(out), "--witness-key", vkey])
    assert r.exit_code == 0, r.output
    assert "witness cosignatures" in r.output and " 0 witness" not in r.output


def test_a_409_names_the_witness_size_and_the_push_retries_from_it(
        db: Store, db_path: Path, signer: note.Signer, wproc: WitnessProcess,
        caplog: pytest.LogCaptureFixture) -> None:
    """The witness got the first checkpoint from elsewhere (a lost response): the pusher,
    believing 0, is told 409 with that size and sends the proof from it at once."""
    conn = db.conn
    append(conn, range(1, 6))
    cp5 = checkpoint.create(conn, signer, 1)
    wproc.start()
    r = httpx.post(wproc.url + "/add-checkpoint", content=format_request(0, [], cp5.note))
    assert r.status_code == 200
    append(conn, range(6, 12))
    cp = checkpoint.create(conn, signer, 2)
    vkey = Witness.open(wproc.state).verifier.vkey
    witness_push.add_witness(db, vkey, wproc.url + "/", actor="test")
    pusher = witness_push.WitnessPusher(db_path, clock=Clock(3))
    with caplog.at_level(logging.INFO, "portwatch.witness_push"):
        _step(pusher)
    assert f"holds size {cp5.size}, not 0: retrying" in caplog.text
    assert pusher.status[NAME].failures == 0, pusher.status[NAME].last_error
    assert witness_rows.cosigned_size(conn, vkey) == cp.size > cp5.size
    assert pusher.status[NAME].known_size == cp.size


def test_a_witness_of_another_log_is_refused_and_retried(
        db: Store, db_path: Path, signer: note.Signer, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = note.Signer(ORIGIN, note.ED25519, Ed25519PrivateKey.generate())
    Witness.init(tmp_path / "w2", NAME, other.verifier)  # pins another log key
    w = WitnessProcess(tmp_path / "w2", free_port())
    w.start()
    try:
        append(db.conn, range(1, 4))
        checkpoint.create(db.conn, signer, 1)
        witness_push.add_witness(db, Witness.open(w.state).verifier.vkey, w.url, actor="t")
        pusher = witness_push.WitnessPusher(db_path, clock=Clock(2))
        _step(pusher)
        assert "403" in pusher.status[NAME].last_error
        assert pusher.status[NAME].failures == 1
    finally:
        w.stop()


def test_witness_config_is_checked_and_ledgered(db: Store, signer: note.Signer) -> None:
    with pytest.raises(InvalidInput, match="cosignature/v1"):
        witness_push.add_witness(db, signer.verifier.vkey, "http://x:1", actor="t")
    wkey = note.Signer(NAME, note.COSIGNATURE_V1,
                       keys.create_key(Path(str(db.path) + ".wk.pem"))).verifier.vkey
    with pytest.raises(InvalidInput, match="URL"):
        witness_push.add_witness(db, wkey, "ftp://x", actor="t")
    w = witness_push.add_witness(db, wkey, "http://customs.example:8990", actor="t")
    assert w.url == "http://customs.example:8990/add-checkpoint"
    [listed] = witness_push.list_witnesses(db)
    assert listed["name"] == NAME and listed["cosigned_size"] is None
    assert any(NAME in d for d in _decisions(db.conn, "witness_added"))
    witness_push.remove_witness(db, NAME, actor="t")
    assert witness_push.list_witnesses(db) == []


def test_a_schema_6_store_gets_the_witness_table(db_path: Path, db: Store) -> None:
    db.conn.execute("DROP TABLE ledger_witnesses")
    db.conn.execute("PRAGMA user_version=6")
    db.close()
    again = open_store(db_path)
    assert witness_rows.all_witnesses(again.conn) == []
    assert again.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_serve_refuses_a_state_another_witness_holds(wproc: WitnessProcess) -> None:
    wproc.start()
    r = subprocess.run([sys.executable, "-m", "tools.cli", "witness", "serve", "--state",
                        str(wproc.state), "--listen", f"127.0.0.1:{free_port()}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "another witness process" in r.stderr


def test_the_running_task_cosigns_each_new_checkpoint(
        db: Store, db_path: Path, signer: note.Signer, wproc: WitnessProcess) -> None:
    """WitnessPusher.run, the task the controller starts, as it runs: no step by hand."""
    wproc.start()
    vkey = Witness.open(wproc.state).verifier.vkey
    witness_push.add_witness(db, vkey, wproc.url, actor="test")
    append(db.conn, range(1, 4))
    cp = checkpoint.create(db.conn, signer, 1)

    async def until(size: int) -> None:  # a condition with a deadline, polled
        async def cosigned() -> None:
            while witness_rows.cosigned_size(db.conn, vkey) != size:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(cosigned(), timeout=10)

    async def go() -> None:
        task = asyncio.create_task(witness_push.WitnessPusher(
            db_path, witness_push.PushSettings(poll_s=0.05)).run())
        try:
            await until(cp.size)
            append(db.conn, range(4, 9))
            await until(checkpoint.create(db.conn, signer, 2).size)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(go())
