"""c2sp.org/tlog-witness v1.1.0, ``POST /add-checkpoint``: the request and the witness's answer.

Request body (UTF-8 text)::

    old <size>\\n
    <consistency proof hash, base64>\\n      (0 to 63 lines)
    \\n
    <signed checkpoint note>

The witness checks, in the specification's order, and answers:

=====  ===========================================================================
400    malformed body or checkpoint, more than 63 proof lines, old size larger
       than the checkpoint's size
404    the checkpoint's origin is not the log this witness pins
403    no valid signature from the pinned log key on the checkpoint
409    ``old`` is not the size this witness last cosigned (0 if never): body is its
       size and a newline, ``Content-Type: text/x.tlog.size``
422    a proof sent with old size 0, a size-0 checkpoint without the empty-tree
       root, the same size with another root, or a consistency proof that does
       not verify against the root this witness kept
200    one ``— <witness name> <base64>`` line: a tlog-cosignature/v1 (type 0x04,
       timestamped) over the checkpoint text
=====  ===========================================================================

The state (size and root) is written and fsynced before the 200 goes out
(``Witness.cosign``), so a witness that crashes after answering still refuses a second
branch when it comes back. This module is pure request parsing and decision; the HTTP
server (controller/witness_server.py) holds the lock that serialises requests.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from controller.ledger import note, tree
from controller.ledger.checkpoint import Checkpoint
from controller.ledger.errors import NoteError
from controller.ledger.witness import Witness

MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 64 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
EMPTY_ROOT = hashlib.sha256(b"").digest()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the witness answers: HTTP status, body, content type, and why (for its log)."""

    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    old: int
    proof: tuple[bytes, ...]
    note: str


def format_request(old: int, proof: Sequence[bytes], checkpoint_note: str) -> bytes:
    """The add-checkpoint body a log sends."""
    lines = [f"old {old}\n"] + [base64.b64encode(h).decode() + "\n" for h in proof]
    return ("".join(lines) + "\n" + checkpoint_note).encode()


class BadRequest(ValueError):
    """The body is not an add-checkpoint request (400)."""


def _decimal(text: str, what: str) -> int:
    if not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        raise BadRequest(f"{what} {text!r} is not a decimal with no leading zero")
    value = int(text)
    if value >= 1 << 63:
        raise BadRequest(f"{what} {value} is above 2^63-1")
    return value


def parse_request(body: bytes) -> Request:
    """Split an add-checkpoint body; BadRequest says what is wrong."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("the body is not UTF-8") from exc
    head, sep, rest = text.partition("\n\n")
    if not sep:
        raise BadRequest("no empty line between the old size and proof, and the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise BadRequest("the body must start with 'old <size>'")
    old = _decimal(lines[0][4:], "old size")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadRequest(f"{len(lines) - 1} proof lines: at most {MAX_PROOF_LINES}")
    proof: list[bytes] = []
    for i, line in enumerate(lines[1:], 1):
        try:
            h = base64.b64decode(line, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise BadRequest(f"proof line {i} is not base64") from exc
        if len(h) != 32 or base64.b64encode(h).decode() != line:
            raise BadRequest(f"proof line {i} is not a canonical base64 SHA-256 hash")
        proof.append(h)
    return Request(old, tuple(proof), rest)


def add_checkpoint(witness: Witness, body: bytes, now_s: int) -> Answer:
    """Decide one add-checkpoint request and, on 200, cosign and persist (caller holds the lock)."""
    try:
        req = parse_request(body)
        signed = note.parse(req.note)
        cp = Checkpoint.parse(signed.text)
    except (BadRequest, NoteError) as exc:
        return Answer(400, f"malformed request: {exc}\n", reason=str(exc))
    if req.old > cp.size:
        return Answer(400, f"old size {req.old} is larger than the checkpoint size {cp.size}\n",
                      reason="old > size")
    if cp.origin != witness.log_key.name:
        return Answer(404, f"unknown log {cp.origin!r}: this witness witnesses "
                      f"{witness.log_key.name!r}\n", reason=f"origin {cp.origin!r}")
    if signed.verified_by(witness.log_key) is not True:
        return Answer(403, "the checkpoint carries no valid signature from the log key this "
                      "witness pins\n", reason="log signature")
    last = witness.last()
    known = last.size if last is not None else 0
    if req.old != known:
        return Answer(409, f"{known}\n", SIZE_CONTENT_TYPE,
                      reason=f"old {req.old} but this witness holds {known}")
    if req.old == 0 and req.proof:
        return Answer(422, "a consistency proof from size 0 must be empty\n",
                      reason="proof from 0")
    if cp.size == 0 and cp.root != EMPTY_ROOT:
        return Answer(422, "a size-0 checkpoint must carry the empty tree's root\n",
                      reason="empty root")
    if last is not None:
        if cp.size == last.size and cp.root != last.root:
            return Answer(422, f"this witness cosigned size {last.size} with another root: "
                          "the log forked\n", reason="same size, other root")
        if not tree.verify_consistency(last.size, cp.size, last.root, cp.root, req.proof):
            return Answer(422, f"the consistency proof from size {last.size} (the root this "
                          f"witness kept) to {cp.size} does not verify\n",
                          reason="consistency proof")
    # Witness.cosign checks again (same result), signs, and fsyncs the new state before
    # the line is returned
    line = witness.cosign(req.note, req.proof, now_s)
    return Answer(200, line, reason=f"cosigned size {cp.size}")
