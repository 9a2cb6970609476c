"""Inclusion and consistency proofs as JSON documents, and their offline check.

Hashes are base64 (as in checkpoints and RFC 6962's JSON API); paths are RFC 9162's PATH
and PROOF lists in order. A proof carries the signed checkpoint it leads to when one exists
at that size, so an auditor holding the log's key needs nothing else::

    {"type": "inclusion", "origin", "leaf_index", "tree_size", "entry", "leaf_hash",
     "inclusion_path": [...], "root", "checkpoint": note | null, "view": {...}}
    {"type": "consistency", "origin", "first", "second", "first_root", "second_root",
     "consistency_path": [...], "first_checkpoint": note | null,
     "second_checkpoint": note | null}
"""

from __future__ import annotations

import base64
import binascii
import sqlite3
from typing import Any

from controller.ledger import checkpoint as cp_mod
from controller.ledger import entries as entries_mod
from controller.ledger import note, tree
from controller.ledger.errors import LedgerError, NoteError
from controller.storage import ledger_log as ledger_store


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _signed_at(conn: sqlite3.Connection, size: int) -> str | None:
    cp = cp_mod.at_size(conn, size)
    return None if cp is None else cp_mod.cosigned_note(conn, cp)


def inclusion(conn: sqlite3.Connection, index: int, tree_size: int | None = None) -> dict[str, Any]:
    """Proof that entry `index` is in the tree of `tree_size` (default: the latest checkpoint
    that holds it, else the whole ledger)."""
    if tree_size is None:
        latest = cp_mod.latest(conn)
        tree_size = latest.size if latest and latest.size > index else ledger_store.size(conn)
    data = ledger_store.entry(conn, index)
    path = ledger_store.inclusion_proof(conn, index, tree_size)
    return {"type": "inclusion", "origin": ledger_store.get_meta(conn, "origin"),
            "leaf_index": index, "tree_size": tree_size, "entry": _b64(data),
            "leaf_hash": _b64(tree.leaf_hash(data)),
            "inclusion_path": [_b64(h) for h in path],
            "root": _b64(ledger_store.root(conn, tree_size)),
            "checkpoint": _signed_at(conn, tree_size),
            "view": entries_mod.to_json(entries_mod.decode(data))}


def consistency(conn: sqlite3.Connection, old: int, new: int | None = None) -> dict[str, Any]:
    """Proof that the tree of `old` entries is a prefix of the tree of `new` (default: the
    latest checkpoint's size). LedgerError for `old` < 1 (RFC 9162 §2.1.4)."""
    if new is None:
        latest = cp_mod.latest(conn)
        if latest is None:
            raise LedgerError("no checkpoint yet: give the new size, or run `portwatch ledger "
                              "checkpoint` first")
        new = latest.size
    if old < 1:
        raise LedgerError(f"no consistency proof from size {old}: RFC 9162 defines them from "
                          "size 1 (every tree extends the empty one, so a proof from 0 proves "
                          "nothing); give --old 1 or more")
    path = ledger_store.consistency_proof(conn, old, new)
    return {"type": "consistency", "origin": ledger_store.get_meta(conn, "origin"),
            "first": old, "second": new, "first_root": _b64(ledger_store.root(conn, old)),
            "second_root": _b64(ledger_store.root(conn, new)),
            "consistency_path": [_b64(h) for h in path],
            "first_checkpoint": _signed_at(conn, old), "second_checkpoint": _signed_at(conn, new)}


def check(doc: dict[str, Any], log_key: note.Verifier | None) -> list[str]:
    """Problems with a proof document (empty: it verifies). Offline: RFC 9162 algorithms,
    and the checkpoints' signatures when the log key is given."""
    try:
        if doc.get("type") == "inclusion":
            return _check_inclusion(doc, log_key)
        if doc.get("type") == "consistency":
            return _check_consistency(doc, log_key)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return [f"malformed proof document: {exc!r}"]
    return ["not a proof document: type must be 'inclusion' or 'consistency'"]


def _raw(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _check_inclusion(doc: dict[str, Any], log_key: note.Verifier | None) -> list[str]:
    problems: list[str] = []
    leaf, root = _raw(doc["leaf_hash"]), _raw(doc["root"])
    if doc.get("entry") is not None and tree.leaf_hash(_raw(doc["entry"])) != leaf:
        problems.append("the entry's bytes do not hash to leaf_hash")
    path = [_raw(h) for h in doc["inclusion_path"]]
    if not tree.verify_inclusion(int(doc["leaf_index"]), int(doc["tree_size"]), leaf, path,
                                 root):
        problems.append(f"the inclusion path does not lead from leaf {doc['leaf_index']} to "
                        f"the root of size {doc['tree_size']}")
    problems += _check_checkpoint(doc.get("checkpoint"), int(doc["tree_size"]), root, log_key)
    return problems


def _check_consistency(doc: dict[str, Any], log_key: note.Verifier | None) -> list[str]:
    problems: list[str] = []
    first, second = int(doc["first"]), int(doc["second"])
    if first < 1:
        return [f"a consistency proof from size {first} proves nothing: RFC 9162 defines them "
                "from size 1"]
    r1, r2 = _raw(doc["first_root"]), _raw(doc["second_root"])
    path = [_raw(h) for h in doc["consistency_path"]]
    if not tree.verify_consistency(first, second, r1, r2, path):
        problems.append(f"the consistency path does not prove size {first} a prefix of size "
                        f"{second}")
    problems += _check_checkpoint(doc.get("first_checkpoint"), first, r1, log_key)
    problems += _check_checkpoint(doc.get("second_checkpoint"), second, r2, log_key)
    return problems


def _check_checkpoint(text: str | None, size: int, root: bytes,
                      log_key: note.Verifier | None) -> list[str]:
    if text is None:
        return []
    try:
        signed = note.parse(text)
        cp = cp_mod.Checkpoint.parse(signed.text)
    except NoteError as exc:
        return [f"checkpoint of size {size}: {exc}"]
    problems = []
    if (cp.size, cp.root) != (size, root):
        problems.append(f"the checkpoint signs size {cp.size} and another root than the proof's")
    if log_key is not None and signed.verified_by(log_key) is not True:
        problems.append(f"the checkpoint of size {size} is not signed by {log_key.name}")
    return problems
