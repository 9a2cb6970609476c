"""Export the ledger as one self-contained JSON bundle, and verify a bundle offline.

Bundle (``"format": "portwatch-ledger-bundle/1"``)::

    {"format", "origin", "log_key": vkey, "witness_keys": [vkey, …], "exported_ms",
     "size", "entries": [{"idx", "entry": base64 of the canonical bytes,
                          "leaf_hash": hex, as the log recorded it at append}, …],
     "checkpoints": [signed note with the log's line and any witness cosignatures, …]}

`verify` needs nothing but the bundle (and, better, keys and checkpoints the auditor got
elsewhere: a pinned log key, witness keys, a witness's latest cosigned checkpoint). It
recomputes every leaf hash and the tree, checks every signature, checks each checkpoint's
root against the entries at its size and the consistency of successive checkpoints, and
reports failures ordered by the first entry they implicate.

How precisely a failure is placed depends on what the tamperer rewrote. Entries edited,
dropped or swapped without recomputing the log's own hashes are named exactly (their bytes
no longer match the leaf hash recorded at append, or the index sequence has a hole). A
tamperer who also recomputed every hash leaves only the signed roots to disagree: the
report then names the range between the last checkpoint the entries still reproduce and
the first one they do not; checkpoints taken often keep that range short.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import itertools
import json
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import StoreError
from controller.ledger import checkpoint as cp_mod
from controller.ledger import entries as entries_mod
from controller.ledger import note, tree
from controller.ledger.errors import EntryFormatError, LedgerError, NoteError
from controller.storage import ledger_log
from controller.storage.database import read_snapshot

FORMAT = "portwatch-ledger-bundle/1"


def export(db_path: Path | str, out_path: Path | str, *, now_ms: int = 0) -> dict[str, Any]:
    """Write the bundle of the store at `db_path`; return a summary (sizes, keys)."""
    try:
        # one snapshot: entries and checkpoints from the same moment
        with read_snapshot(db_path) as conn:
            doc = _snapshot(conn, Path(db_path), now_ms)
    except (sqlite3.OperationalError, StoreError) as exc:
        raise LedgerError(f"cannot read the ledger in {db_path}: {exc}") from exc
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return {"size": doc["size"], "checkpoints": len(doc["checkpoints"]),
            "origin": doc["origin"], "log_key": doc["log_key"],
            "witness_keys": doc["witness_keys"]}


def _snapshot(conn: sqlite3.Connection, db_path: Path, now_ms: int) -> dict[str, Any]:
    origin = ledger_log.get_meta(conn, "origin")
    log_key = None
    if origin is not None and cp_mod.key_path(db_path).exists():
        log_key = cp_mod.log_signer(db_path, origin).verifier.vkey
    entries = [{"idx": idx, "entry": base64.b64encode(data).decode(), "leaf_hash": h.hex()}
               for idx, data, h in ledger_log.iter_entries(conn)]
    notes = [cp_mod.cosigned_note(conn, c) for c in cp_mod.all_checkpoints(conn)]
    return {"format": FORMAT, "origin": origin, "log_key": log_key,
            "witness_keys": cp_mod.witness_keys(conn), "exported_ms": now_ms,
            "size": len(entries), "entries": entries, "checkpoints": notes}


@dataclass(frozen=True, slots=True)
class Failure:
    """One thing that does not verify. Some entry in `entry`..`last` is not as it was
    appended (`last` None: exactly `entry`); both None: keys or signatures."""

    position: str
    reason: str
    entry: int | None = None
    last: int | None = None

    @property
    def bound(self) -> int:
        """The position by which something is certainly wrong (-1: before any entry)."""
        if self.entry is None:
            return -1
        return self.entry if self.last is None else self.last

    def __str__(self) -> str:
        return f"{self.position}: {self.reason}"


@dataclass
class Report:
    """What `verify` found: counts of what verified (checkpoints include those supplied by
    the auditor), the recomputed root, and every failure; `first` is the one to report."""

    entries: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    root: bytes = tree.EMPTY_ROOT
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def first(self) -> Failure | None:
        """The failure that proves the earliest wrong entry: key and signature failures,
        then by the end of the range it names, an exact entry before a range."""
        if not self.failures:
            return None
        return min(self.failures, key=lambda f: (f.bound, f.last is not None))

    def fail(self, position: str, reason: str, entry: int | None = None,
             last: int | None = None) -> None:
        self.failures.append(Failure(position, reason, entry, last))


@dataclass(frozen=True, slots=True)
class _Signed:
    label: str
    cp: cp_mod.Checkpoint


def verify(bundle_path: Path | str, *, log_key: str | None = None,
           witness_keys: Sequence[str] = (), checkpoints: Sequence[str] = ()) -> Report:
    """Check a bundle offline. `log_key`/`witness_keys` (vkeys) pin keys instead of trusting
    the bundle's; `checkpoints` are signed notes the auditor holds from elsewhere."""
    report = Report()
    try:
        doc = json.loads(Path(bundle_path).read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
    except (OSError, ValueError) as exc:
        report.fail("bundle", f"cannot read {bundle_path}: {exc}")
        return report
    keys = _keys(doc, log_key, witness_keys, report)
    leaves = _check_entries(doc.get("entries") or [], report)
    t = tree.MemoryTree(leaves)
    report.entries, report.root = len(leaves), tree.root(t, len(leaves))
    if keys is not None:
        notes = [(f"checkpoint #{i}", n) for i, n in enumerate(doc.get("checkpoints") or [])]
        notes += [(f"supplied checkpoint #{i}", n) for i, n in enumerate(checkpoints)]
        signed = _check_signatures(notes, keys[0], keys[1], report)
        _check_roots(signed, t, report)
    return report


def _keys(doc: dict[str, Any], pinned_log: str | None, pinned_witnesses: Sequence[str],
          report: Report) -> tuple[note.Verifier, list[note.Verifier]] | None:
    try:
        bundled = note.Verifier.parse(doc["log_key"]) if doc.get("log_key") else None
        log = note.Verifier.parse(pinned_log) if pinned_log else bundled
        witnesses = [note.Verifier.parse(k) for k in
                     (pinned_witnesses or doc.get("witness_keys") or [])]
    except NoteError as exc:
        report.fail("keys", str(exc))
        return None
    if log is None:
        report.fail("log key", "the bundle has no log key and none was given: nothing is "
                    "signed, so nothing can be verified")
        return None
    if bundled is not None and bundled != log:
        report.fail("log key", f"the bundle's log key {bundled.vkey} is not the pinned key "
                    f"{log.vkey}")
    if doc.get("origin") not in (None, log.name):
        report.fail("origin", f"the bundle's origin {doc.get('origin')!r} is not the log "
                    f"key's name {log.name!r}")
    if not pinned_log:
        report.notes.append("log key taken from the bundle: pin it with --log-key for "
                            "assurance against a replaced key")
    return log, witnesses


def _check_entries(items: list[dict[str, Any]], report: Report) -> list[bytes]:
    """Leaf hashes of the entries in bundle order, and any entry that is not as appended."""
    leaves: list[bytes] = []
    prev = -1
    for pos, item in enumerate(items):
        idx = item.get("idx")
        at = idx if isinstance(idx, int) else pos
        if idx != prev + 1:
            what = (f"is missing: the bundle goes from entry {prev} to entry {idx}"
                    if isinstance(idx, int) and idx > prev + 1 else
                    f"is out of place: entry {prev} is followed by one that says it is {idx}")
            report.fail(f"entry {prev + 1}", what, prev + 1)
        prev = at
        try:
            data = base64.b64decode(item["entry"], validate=True)
            entries_mod.decode(data)
        except (KeyError, ValueError, binascii.Error, EntryFormatError) as exc:
            report.fail(f"entry {at}", f"not a canonical ledger entry: {exc}", at)
            data = str(item.get("entry")).encode()
        h = tree.leaf_hash(data)
        if item.get("leaf_hash") != h.hex():
            report.fail(f"entry {at}", f"its bytes hash to {h.hex()} but the log recorded "
                        f"leaf hash {item.get('leaf_hash')} when it was appended: the entry "
                        "was changed afterwards (edited, or swapped with another)", at)
        leaves.append(h)
    return leaves


def _check_signatures(notes: list[tuple[str, str]], log: note.Verifier,
                      witnesses: list[note.Verifier], report: Report) -> list[_Signed]:
    signed: list[_Signed] = []
    for label, text in notes:
        try:
            n = note.parse(text)
            c = cp_mod.Checkpoint.parse(n.text)
        except NoteError as exc:
            report.fail(label, f"not a checkpoint note: {exc}")
            continue
        label = f"{label} (size {c.size})"
        if c.origin != log.name:
            report.fail(label, f"origin {c.origin!r} is not the log's {log.name!r}")
            continue
        if n.verified_by(log) is not True:
            report.fail(label, "the log's signature does not verify: the checkpoint was "
                        "altered or its signature replaced or forged")
            continue
        for w in witnesses:
            ok = n.verified_by(w)
            if ok is False:
                report.fail(label, f"the cosignature of witness {w.name} does not verify")
            elif ok:
                report.cosignatures += 1
        report.checkpoints += 1
        signed.append(_Signed(label, c))
    return signed


def _check_roots(signed: list[_Signed], t: tree.MemoryTree, report: Report) -> None:
    """Each signed root against the entries; successive checkpoints for consistency."""
    ordered = sorted(signed, key=lambda s: s.cp.size)
    good = [s for s in ordered if s.cp.size <= t.size and tree.root(t, s.cp.size) == s.cp.root]
    good_sizes = sorted({s.cp.size for s in good})
    for s in ordered:
        n = s.cp.size
        below = bisect.bisect_left(good_sizes, n)  # good checkpoints smaller than this one
        start = good_sizes[below - 1] if below else 0
        if s in good:
            continue
        if n > t.size:
            gone = (f"entry {t.size} was" if n - t.size == 1 else
                    f"entries {t.size}..{n - 1} were")
            report.fail(s.label, f"it signs {n} entries but the bundle holds {t.size}: {gone} "
                        "removed (the log was truncated)", t.size)
            continue
        other = next((g for g in reversed(good) if g.cp.size >= n), None)
        why = (f"; {other.label} matches the entries, so the log was rewritten and re-signed "
               "after this checkpoint (a forked history)" if other else "")
        report.fail(s.label, f"the entries do not give its signed root: an entry in "
                    f"{start}..{n - 1} was edited, removed, reordered or inserted after it "
                    f"was signed{why}", start, n - 1)
    for a, b in itertools.pairwise(ordered):
        if a.cp.size == b.cp.size and a.cp.root != b.cp.root:
            report.fail(b.label, f"it and {a.label} sign different roots for the same size: "
                        "the log signed two histories (a fork)", 0, b.cp.size - 1)
        elif a in good and b in good:
            proof = tree.consistency_proof(t, a.cp.size, b.cp.size)
            if not tree.verify_consistency(a.cp.size, b.cp.size, a.cp.root, b.cp.root, proof):
                report.fail(b.label, f"not consistent with {a.label}", a.cp.size,
                            b.cp.size - 1)
