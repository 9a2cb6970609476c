"""The log key pinned in the ledger, and its rotations: what signing and `verify` follow.

The key that signs a log's first checkpoint is pinned in ``ledger_meta`` (with the entry
that made it current, once there is one). A store that had checkpoints before keys were
pinned pins, on its first signing after the upgrade, the key that signed its latest
checkpoint (refusing any other) and records it as a ``log_key`` decision. From then on the
log signs only with the pinned key: a key file replaced by another key is refused.
Changing the key takes a ``log_key_rotation`` decision whose body carries a signature by
the *old* key over the new key and the rotation's own leaf index, so it names one place in
one log and only the old key's holder can make it. `verify` starts from the key the auditor
trusts and follows the rotations, checking each one's signature; a checkpoint of size s is
signed by the key current after the rotations among the first s entries.
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.ledger import entries as entries_mod
from controller.ledger import keys, note, tree
from controller.ledger.errors import LedgerError, NoteError
from controller.storage import ledger_log as ledger_store

LOG_KEY, ROTATION = "log_key", "log_key_rotation"
KINDS = (LOG_KEY, ROTATION)
_META_KEY, _META_ENTRY = "log_key", "log_key_entry"


def rotation_message(origin: str, old_key: str, new_key: str, index: int) -> bytes:
    """What the old key signs (and the new one too, to show it is held): both vkeys and
    the leaf index the rotation entry takes."""
    return (f"portwatch log key rotation\n{origin}\n{old_key}\n{new_key}\n{index}\n").encode()


def rotation_body(old: note.Signer, new: note.Signer, index: int, reason: str) -> dict[str, Any]:
    """The body of a ``log_key_rotation`` decision at leaf `index`."""
    msg = rotation_message(old.name, old.verifier.vkey, new.verifier.vkey, index)
    return {"old_key": old.verifier.vkey, "new_key": new.verifier.vkey, "index": index,
            "old_signature": base64.b64encode(old.private.sign(msg)).decode(),
            "new_signature": base64.b64encode(new.private.sign(msg)).decode(),
            "reason": reason}


def check_rotation(body: dict[str, Any], current: note.Verifier, index: int) -> note.Verifier:
    """The new key a rotation at leaf `index` hands over to; NoteError says why it does not
    count (not from the current key, a bad signature, another index)."""
    try:
        old, new = note.Verifier.parse(str(body["old_key"])), note.Verifier.parse(
            str(body["new_key"]))
        sigs = [base64.b64decode(str(body[k]), validate=True)
                for k in ("old_signature", "new_signature")]
    except (KeyError, ValueError, binascii.Error) as exc:
        raise NoteError(f"malformed log key rotation: {exc!r}") from exc
    if old != current:
        raise NoteError(f"it hands over from {old.vkey}, but the log's key there is "
                        f"{current.vkey}")
    if body.get("index") != index or new.name != current.name:
        raise NoteError(f"it was made for leaf {body.get('index')} of {new.name}, not leaf "
                        f"{index} of {current.name}: a rotation copied from elsewhere")
    msg = rotation_message(current.name, old.vkey, new.vkey, index)
    for who, key, sig in (("old", old, sigs[0]), ("new", new, sigs[1])):
        if not _ed25519_ok(key, msg, sig):
            raise NoteError(f"its signature by the {who} key does not verify")
    return new


def _ed25519_ok(key: note.Verifier, msg: bytes, sig: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    try:
        Ed25519PublicKey.from_public_bytes(key.public).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


# -- the store side -------------------------------------------------------------------


def pinned(conn: sqlite3.Connection) -> str | None:
    """The vkey the store says signs now (None: nothing pinned yet). LedgerError when the
    entry that should back it is not a pin or rotation to that key as the log appended it."""
    vkey, at = ledger_store.get_meta(conn, _META_KEY), ledger_store.get_meta(conn, _META_ENTRY)
    if vkey is None or at is None:  # no entry: the key that signed the first checkpoint
        return vkey
    try:
        idx = int(at or "")
        data = ledger_store.entry(conn, idx)
        e = entries_mod.decode(data)
    except (ValueError, LedgerError) as exc:
        raise LedgerError(f"the store's pinned log key points at no valid ledger entry "
                          f"({exc}): the store was altered") from exc
    recorded = ledger_store.leaf_hash_at(conn, idx)
    named = (e.body.get("vkey") if e.decision == LOG_KEY else e.body.get("new_key")) \
        if isinstance(e, entries_mod.Decision) and e.decision in KINDS else None
    if named != vkey or recorded != tree.leaf_hash(data):
        raise LedgerError(f"the store's pinned log key is not what ledger entry {idx} says: "
                          "the store was altered; export and verify it")
    return vkey


def ensure_pinned(conn: sqlite3.Connection, signer: note.Signer, now_ms: int) -> None:
    """Refuse a signer whose key is not the pinned one; pin it when nothing is (inside the
    caller's transaction). On a store that already has checkpoints (one from before keys
    were pinned), the key must sign the latest of them to be pinned."""
    vkey = signer.verifier.vkey
    current = pinned(conn)
    if current == vkey:
        return
    if current is not None:
        raise LedgerError(
            f"refusing to sign: the log key in the key file ({vkey}) is not the key pinned in "
            f"the store ({current}). If the file was replaced, put the log's key back; a key "
            "is changed only with `portwatch ledger rotate-key`, which the old key signs")
    last = ledger_store.latest_checkpoint(conn)
    if last is None:  # a new log: its first key is pinned as it signs its first checkpoint
        ledger_store.set_meta(conn, _META_KEY, vkey)
        return
    # a store signed before keys were pinned: the key must be the one that signed it, and
    # the ledger itself records that it was pinned (checkpoints cover the record)
    if note.parse(last[3]).verified_by(signer.verifier) is not True:
        raise LedgerError(
            f"refusing to pin the log key {vkey}: it did not sign this ledger's latest "
            f"checkpoint (size {last[1]}); the key file was replaced. Put the log's key back")
    idx = ledger_store.append_decision(
        conn, LOG_KEY, "controller",
        {"vkey": vkey, "reason": f"pinned on upgrade: the key that signed the checkpoints up "
                                 f"to size {last[1]}"}, now_ms)
    _remember(conn, vkey, idx)


def _remember(conn: sqlite3.Connection, vkey: str, idx: int) -> None:
    ledger_store.set_meta(conn, _META_KEY, vkey)
    ledger_store.set_meta(conn, _META_ENTRY, str(idx))


def new_key_path(key_file: Path) -> Path:
    return key_file.with_name(key_file.name + ".new")


def retired_key_path(key_file: Path, verifier: note.Verifier) -> Path:
    return key_file.with_name(f"{key_file.name}.retired-{verifier.key_id.hex()}")


def record_rotation(conn: sqlite3.Connection, old: note.Signer, new: note.Signer, now_ms: int,
                    actor: str, reason: str) -> int:
    """Append the signed rotation from `old` (which must be the pinned key) to `new`, inside
    the caller's transaction; return its leaf index."""
    if pinned(conn) != old.verifier.vkey:
        raise LedgerError(f"the key file's key {old.verifier.vkey} is not the pinned log key: "
                          "only the current key can hand over to a new one")
    idx = ledger_store.size(conn)
    at = ledger_store.append_decision(conn, ROTATION, actor,
                                      rotation_body(old, new, idx, reason), now_ms)
    _remember(conn, new.verifier.vkey, at)
    return at


def generate_new_key(key_file: Path, name: str) -> note.Signer:
    """The next key, written (0600) next to the current one as ``<file>.new``."""
    path = new_key_path(key_file)
    if path.exists():
        raise LedgerError(f"{path} exists: a rotation was interrupted. If the store pins its "
                          f"key (`portwatch ledger key`), move it to {key_file}; else remove it")
    return note.Signer(name, note.ED25519, keys.create_key(path))


# -- the verifier side ----------------------------------------------------------------


@dataclass
class KeyChain:
    """The log keys in force from each tree size on, as the entries hand them over."""

    segments: list[tuple[int, note.Verifier]]
    problems: list[tuple[int, str]] = field(default_factory=list)
    pins: int = 0

    @property
    def current(self) -> note.Verifier:
        return self.segments[-1][1]

    def key_for(self, size: int) -> note.Verifier:
        """The key that signs a checkpoint of `size` entries."""
        out = self.segments[0][1]
        for start, key in self.segments:
            if start <= size:
                out = key
        return out

    def verifiers(self) -> list[note.Verifier]:
        return [k for _, k in self.segments]

    def follow(self, idx: int, e: entries_mod.Decision) -> None:
        """Take a ``log_key`` or ``log_key_rotation`` decision at leaf `idx` into account."""
        if e.decision == LOG_KEY:
            self.pins += 1
            named = str(e.body.get("vkey"))
            if self.pins > 1:
                self.problems.append((idx, "a second log_key pin: the log key changes only "
                                      "by a log_key_rotation the old key signs"))
            elif named != self.current.vkey:
                self.problems.append((idx, f"it pins the log key {named}, not {self.current.vkey} "
                                      "(the key you trust, or the one the bundle starts with)"))
            return
        try:
            new = check_rotation(e.body, self.current, idx)
        except NoteError as exc:
            self.problems.append((idx, f"a log key rotation that does not count: {exc}"))
            return
        self.segments.append((idx + 1, new))


def chain_from(start: note.Verifier, decisions: Iterable[tuple[int, entries_mod.Decision]],
               start_size: int = 0) -> KeyChain:
    """Follow the pins and rotations from `start`, the key in force at `start_size`."""
    chain = KeyChain([(start_size, start)])
    for idx, e in decisions:
        chain.follow(idx, e)
    return chain
