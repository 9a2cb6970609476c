"""`portwatch witness serve`: c2sp.org/tlog-witness v1.1.0 add-checkpoint over HTTP.

The cosignatures are checked with a verifier written here from the specification's text
(c2sp.org/tlog-cosignature v1, c2sp.org/signed-note), not with controller.ledger.note.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from ledger_helpers import ORIGIN, weighing
from starlette.testclient import TestClient

from controller.ledger import checkpoint, note, tree
from controller.ledger.witness import Witness
from controller.ledger.witness_protocol import format_request
from controller.witness_server import create_app

NAME = "customs.example/w1"
NOW = 1_780_000_000


def spec_check_cosignature(vkey: str, text: str, line: str) -> int:
    """tlog-cosignature v1 as the spec words it; returns the timestamp, raises if invalid.

    vkey = name+hex(key ID)+base64(0x04 || public key); key ID = SHA-256(name || 0x0A ||
    0x04 || key)[:4]; the line is '— name base64(key ID || timestamp (u64 BE) || sig)';
    sig is Ed25519 over 'cosignature/v1\\ntime <timestamp>\\n' || checkpoint text."""
    name, hex_id, raw_b64 = vkey.split("+", 2)
    raw = base64.b64decode(raw_b64)
    assert raw[0] == 0x04 and len(raw) == 33
    kid = hashlib.sha256(name.encode() + b"\n" + b"\x04" + raw[1:]).digest()[:4]
    assert kid.hex() == hex_id
    assert line.startswith("\u2014 " + name + " ") and line.endswith("\n")
    blob = base64.b64decode(line.rstrip("\n").split(" ")[2])
    assert blob[:4] == kid and len(blob) == 4 + 8 + 64
    (ts,) = struct.unpack(">Q", blob[4:12])
    msg = b"cosignature/v1\ntime " + str(ts).encode() + b"\n" + text.encode()
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[12:], msg)  # raises if bad
    return int(ts)


class Log:
    """A log in memory: its leaves, and signed checkpoints and proofs of any size."""

    def __init__(self, signer: note.Signer, leaves: list[bytes]) -> None:
        self.signer, self.hashes = signer, [tree.leaf_hash(e) for e in leaves]

    def root(self, n: int) -> bytes:
        return tree.root(tree.MemoryTree(self.hashes[:n]), n)

    def note(self, n: int) -> str:
        return checkpoint.sign(self.signer, n, self.root(n))

    def proof(self, old: int, new: int) -> list[bytes]:
        return tree.consistency_proof(tree.MemoryTree(self.hashes[:new]), old, new)

    def body(self, old: int, new: int) -> bytes:
        return format_request(old, self.proof(old, new) if 0 < old < new else [], self.note(new))


@pytest.fixture
def log(signer: note.Signer) -> Log:
    return Log(signer, [weighing(s) for s in range(1, 21)])


@pytest.fixture
def state(tmp_path: Path, signer: note.Signer) -> Path:
    Witness.init(tmp_path / "w", NAME, signer.verifier)
    return tmp_path / "w"


@pytest.fixture
def client(state: Path) -> TestClient:
    return TestClient(create_app(state, clock=lambda: NOW))


def _state(state: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((state / "state.json").read_text())
    return doc


def test_cosigns_first_checkpoint_and_its_growth(client: TestClient, log: Log,
                                                 state: Path) -> None:
    vkey = Witness.open(state).verifier.vkey
    r = client.post("/add-checkpoint", content=log.body(0, 5))
    assert r.status_code == 200, r.text
    assert spec_check_cosignature(vkey, log.note(5).split("\n\n")[0] + "\n", r.text) == NOW
    assert _state(state)["size"] == 5  # persisted before the answer
    r = client.post("/add-checkpoint", content=log.body(5, 13))
    assert r.status_code == 200, r.text
    spec_check_cosignature(vkey, checkpoint.Checkpoint(ORIGIN, 13, log.root(13)).text(), r.text)
    assert _state(state)["size"] == 13


def test_stale_old_size_gets_409_with_the_witness_size(client: TestClient, log: Log) -> None:
    assert client.post("/add-checkpoint", content=log.body(0, 5)).status_code == 200
    r = client.post("/add-checkpoint", content=log.body(0, 8))
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("text/x.tlog.size")
    assert r.text == "5\n"
    r = client.post("/add-checkpoint", content=log.body(3, 8))  # any old size but 5
    assert (r.status_code, r.text) == (409, "5\n")


def test_a_proof_that_fails_gets_422_and_changes_nothing(client: TestClient, log: Log,
                                                         state: Path) -> None:
    assert client.post("/add-checkpoint", content=log.body(0, 5)).status_code == 200
    proof = log.proof(5, 8)
    proof[0] = bytes(32)
    r = client.post("/add-checkpoint", content=format_request(5, proof, log.note(8)))
    assert r.status_code == 422, r.text
    r = client.post("/add-checkpoint", content=format_request(5, [], log.note(8)))
    assert r.status_code == 422
    assert _state(state)["size"] == 5


def test_never_a_second_branch(client: TestClient, log: Log, signer: note.Signer,
                               state: Path) -> None:
    """A fork (entry 3 rewritten) is refused before and after the first branch grows, even
    with the fork's own valid proofs; the witness stays on the first branch."""
    fork = Log(signer, [weighing(s) if s != 3 else weighing(99) for s in range(1, 21)])
    assert client.post("/add-checkpoint", content=log.body(0, 5)).status_code == 200
    assert client.post("/add-checkpoint", content=fork.body(5, 8)).status_code == 422
    assert client.post("/add-checkpoint", content=log.body(5, 8)).status_code == 200
    for old, new in ((8, 8), (8, 12)):
        assert client.post("/add-checkpoint", content=fork.body(old, new)).status_code == 422
    assert _state(state)["root"] == base64.b64encode(log.root(8)).decode()
    held = (state / "latest.note").read_text()
    assert held.startswith(checkpoint.Checkpoint(ORIGIN, 8, log.root(8)).text())


def test_foreign_key_403_unknown_log_404(client: TestClient, log: Log) -> None:
    other = note.Signer(ORIGIN, note.ED25519, Ed25519PrivateKey.generate())
    r = client.post("/add-checkpoint", content=Log(other, []).body(0, 0))
    assert r.status_code == 403, r.text
    stranger = note.Signer("example.com/other-log", note.ED25519, Ed25519PrivateKey.generate())
    r = client.post("/add-checkpoint", content=Log(stranger, []).body(0, 0))
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("body", [
    b"", b"garbage", b"old 0\n", b"old -1\n\n", b"old 01\n\nx\n", b"\xff\xfe\n\n",
    b"old 0\nnot base64!\n\n", b"old 9\n\n",  # old larger than the checkpoint: below
])
def test_malformed_requests_get_400(client: TestClient, log: Log, body: bytes) -> None:
    if body == b"old 9\n\n":
        body += log.note(5).encode()
    r = client.post("/add-checkpoint", content=body)
    assert r.status_code == 400, (body, r.status_code, r.text)
    r = client.post("/add-checkpoint", content=format_request(0, [bytes(32)] * 64, log.note(5)))
    assert r.status_code == 400


def test_proof_from_size_0_and_too_large_body(client: TestClient, log: Log) -> None:
    r = client.post("/add-checkpoint", content=format_request(0, [bytes(32)], log.note(5)))
    assert r.status_code == 422
    r = client.post("/add-checkpoint", content=b"old 0\n" + b"A" * 70_000)
    assert r.status_code == 413


def test_state_survives_a_restart(state: Path, log: Log) -> None:
    first = TestClient(create_app(state, clock=lambda: NOW))
    assert first.post("/add-checkpoint", content=log.body(0, 7)).status_code == 200
    again = TestClient(create_app(state, clock=lambda: NOW + 5))
    r = again.post("/add-checkpoint", content=log.body(0, 9))
    assert (r.status_code, r.text) == (409, "7\n")
    assert again.post("/add-checkpoint", content=log.body(7, 9)).status_code == 200


def test_two_requests_at_once_never_both_advance(state: Path, log: Log,
                                                 signer: note.Signer) -> None:
    """Same old size, different roots, sent together: one is cosigned, the other told 409."""
    fork = Log(signer, [weighing(s) if s != 7 else weighing(77) for s in range(1, 21)])
    app = create_app(state, clock=lambda: NOW)

    async def both() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://w") as c:
            rs = await asyncio.gather(*(c.post("/add-checkpoint", content=b)
                                        for b in (log.body(0, 10), fork.body(0, 10))))
        return sorted(r.status_code for r in rs)

    assert asyncio.run(both()) == [200, 409]
