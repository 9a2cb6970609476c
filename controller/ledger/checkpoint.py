"""Signed checkpoints (c2sp.org/tlog-checkpoint) of the ledger, and their cosignatures.

A checkpoint is a signed note whose text is the log's origin, its size and its root::

    portwatch/vector-site
    5
    zKKAdNIFs6kT/3hOnC3MDPmT90HHy1Y+mGbuxBWXfCM=

    — portwatch/vector-site JA4qMrFK39jAcRWLvUpFLIOpRu5lI5dwuPEe8kqA4O4tLWp/Ln2UYJctCPr1Q0DoXHV…

(vectors/ledger.json has it whole.) The log key (Ed25519, signature type 0x01) is named
after the origin, ``portwatch/<site>``, and kept in ``<db>.ledger-key.pem`` (mode 0600) next
to the store. Before it signs, the log checks that its cached subtree hashes still give the
root of its last checkpoint: a log must never sign a checkpoint inconsistent with one it
signed, so a store whose hashes were rewritten stops the signing instead of being blessed.
(Entries edited without their hashes do not change the signed root; `bundle.verify` names
them.)
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from controller.ledger import keys, logkey, note
from controller.ledger.errors import LedgerError, NoteError
from controller.storage import ledger_log as ledger_store
from controller.storage.database import transaction

ORIGIN_PREFIX = "portwatch/"


def origin_for(site: str) -> str:
    return note.check_key_name(ORIGIN_PREFIX + site)


def key_path(db_path: Path | str) -> Path:
    """Where the log's private key lives: next to the store, never in the repository."""
    return Path(str(db_path) + ".ledger-key.pem")


def log_signer(db_path: Path | str, origin: str) -> note.Signer:
    """The log's signing key (created on first use), named after the origin."""
    return note.Signer(note.check_key_name(origin), note.ED25519,
                       keys.load_or_create_key(key_path(db_path)))


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The note text of a checkpoint: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
            raise NoteError("a checkpoint is 3 or more non-empty lines: origin, size, root")
        origin, size_s, root_b64 = lines[:3]
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and
                                                            size_s.startswith("0")):
            raise NoteError(f"checkpoint size {size_s!r} is not a decimal with no leading zero")
        try:
            root = base64.b64decode(root_b64, validate=True)
        except (ValueError, binascii.Error) as exc:
            raise NoteError("checkpoint root is not base64") from exc
        if len(root) != 32:
            raise NoteError(f"checkpoint root is {len(root)} bytes, not 32")
        return cls(origin, int(size_s), root)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    id: int
    size: int
    root: bytes
    note: str  # with the log's signature only
    created_ms: int


def sign(signer: note.Signer, size: int, root: bytes) -> str:
    """A checkpoint note signed by the log key."""
    text = Checkpoint(signer.name, size, root).text()
    return text + "\n" + signer.signature_line(text)


def create(conn: sqlite3.Connection, signer: note.Signer, now_ms: int) -> StoredCheckpoint:
    """Sign and store a checkpoint of the whole ledger (the latest one if the size is the same).

    LedgerError if the origin differs from the log's, the tables no longer give the root of
    the last checkpoint, or `signer` is not the log key pinned in the store (then nothing is
    signed). The first checkpoint pins its key (logkey.py).
    """
    with transaction(conn):
        origin = ledger_store.get_meta(conn, "origin")
        if origin is None:
            ledger_store.set_meta(conn, "origin", signer.name)
        elif origin != signer.name:
            raise LedgerError(f"this ledger's origin is {origin!r}, not {signer.name!r}: "
                              "pass the site it was created for")
        last = latest(conn)
        if last is not None and (last.size > ledger_store.size(conn) or
                                 ledger_store.root(conn, last.size) != last.root):
            raise LedgerError(
                f"refusing to sign: the ledger no longer gives the root of checkpoint "
                f"{last.id} (size {last.size}); its store was altered. Export it and run "
                "`portwatch ledger verify` to find the first altered entry")
        logkey.ensure_pinned(conn, signer, now_ms)  # may append the pin itself
        n = ledger_store.size(conn)
        if last is not None and last.size == n:
            return last
        root = ledger_store.root(conn, n)
        text = sign(signer, n, root)
        cp_id = ledger_store.insert_checkpoint(conn, n, root, text, now_ms)
        return StoredCheckpoint(cp_id, n, root, text, now_ms)


def maybe_create(conn: sqlite3.Connection, signer: note.Signer, now_ms: int,
                 every_ms: int) -> StoredCheckpoint | None:
    """Checkpoint if the ledger grew and the last checkpoint is `every_ms` old (for a timer)."""
    last = latest(conn)
    if last is not None and (now_ms - last.created_ms < every_ms
                             or ledger_store.size(conn) == last.size):
        return None
    return create(conn, signer, now_ms)


def _stored(row: ledger_store.CheckpointRow | None) -> StoredCheckpoint | None:
    return None if row is None else StoredCheckpoint(*row)


def latest(conn: sqlite3.Connection) -> StoredCheckpoint | None:
    return _stored(ledger_store.latest_checkpoint(conn))


def at_size(conn: sqlite3.Connection, size: int) -> StoredCheckpoint | None:
    return _stored(ledger_store.checkpoint_at_size(conn, size))


def all_checkpoints(conn: sqlite3.Connection) -> list[StoredCheckpoint]:
    return [StoredCheckpoint(*r) for r in ledger_store.all_checkpoints(conn)]


def add_cosignature(conn: sqlite3.Connection, checkpoint_id: int, line: str,
                    witness: note.Verifier, now_ms: int) -> None:
    """Keep a witness's cosignature line after checking it signs that checkpoint."""
    cp = _stored(ledger_store.checkpoint_by_id(conn, checkpoint_id))
    if cp is None:
        raise LedgerError(f"no checkpoint {checkpoint_id}")
    signed = note.parse(cp.note).with_line(line)
    if signed.verified_by(witness) is not True:
        raise NoteError(f"the cosignature line is not a valid signature of {witness.name} on "
                        f"checkpoint {checkpoint_id}")
    ledger_store.put_cosignature(conn, checkpoint_id, witness.name, witness.vkey, line, now_ms)


def cosigned_note(conn: sqlite3.Connection, cp: StoredCheckpoint) -> str:
    """The checkpoint note with every stored witness cosignature line appended."""
    return cp.note + "".join(ledger_store.cosignature_lines(conn, cp.id))


def witness_keys(conn: sqlite3.Connection) -> list[str]:
    return ledger_store.witness_keys(conn)
