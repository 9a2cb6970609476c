"""Export the ledger as one self-contained JSON bundle, and verify a bundle offline.

Bundle (``"format": "portwatch-ledger-bundle/1"``)::

    {"format", "origin", "log_key": vkey, "log_key_at_start": vkey,
     "witness_keys": [vkey, …], "exported_ms", "start", "prefix": [base64 subtree hash, …],
     "size", "entries": [{"idx", "entry": base64 of the canonical bytes,
                          "leaf_hash": hex, as the log recorded it at append}, …],
     "checkpoints": [signed note with the log's line and any witness cosignatures, …]}

A partial bundle (``start`` > 0) holds the entries from ``start`` on and, in ``prefix``,
the complete subtree hashes that make up the ones before (tree.frontier_blocks); it is
verified only against a root the auditor already holds (``extends``).

`verify` needs nothing but the bundle (and, better, keys and checkpoints the auditor got
elsewhere: a pinned log key, witness keys, a witness's latest cosigned checkpoint, the
earlier bundle). It recomputes every leaf hash and the tree, follows the log key's signed
rotations, checks every signature, checks each checkpoint's root against the entries at its
size and the consistency of successive checkpoints, and reports failures ordered by the
first entry they implicate.

How precisely a failure is placed depends on what the tamperer rewrote. Entries edited,
dropped or moved without recomputing the log's own hashes are named exactly (their bytes
no longer match the leaf hash recorded at append, or match another index's, or the index
sequence has a hole). A tamperer who also recomputed every hash leaves only the signed roots
to disagree: the report then names the range between the last checkpoint known to be in the
failing checkpoint's history and the first one the entries do not reproduce (when the log
key signed two histories, the entries' own checkpoints may be the forger's and count only
if a witness cosigned them with the failing one); against an earlier bundle the fork is
named at its first differing entry.
"""

from __future__ import annotations

import base64
import binascii
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
from controller.ledger import device_keys, logkey, note, tree
from controller.ledger import entries as entries_mod
from controller.ledger.errors import EntryFormatError, LedgerError, NoteError
from controller.storage import ledger_log
from controller.storage.database import read_snapshot

FORMAT = "portwatch-ledger-bundle/1"


def export(db_path: Path | str, out_path: Path | str, *, now_ms: int = 0,
           since_size: int = 0) -> dict[str, Any]:
    """Write the bundle of the store at `db_path` (entries from `since_size` on, with the
    frontier of the ones before it); return a summary (sizes, keys)."""
    try:
        # one snapshot: entries and checkpoints from the same moment
        with read_snapshot(db_path) as conn:
            doc = _snapshot(conn, Path(db_path), now_ms, since_size)
    except (sqlite3.OperationalError, StoreError) as exc:
        raise LedgerError(f"cannot read the ledger in {db_path}: {exc}") from exc
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return {"start": doc["start"], "size": doc["size"], "checkpoints": len(doc["checkpoints"]),
            "origin": doc["origin"], "log_key": doc["log_key"],
            "witness_keys": doc["witness_keys"]}


def _snapshot(conn: sqlite3.Connection, db_path: Path, now_ms: int,
              start: int) -> dict[str, Any]:
    size = ledger_log.size(conn)
    if not 0 <= start <= size:
        raise LedgerError(f"--since-size {start} is out of range: the ledger holds {size} "
                          "entries")
    origin = ledger_log.get_meta(conn, "origin")
    try:
        log_key = logkey.pinned(conn)
    except LedgerError:  # an altered store is exported all the same: verify names what
        log_key = None
    if log_key is None and origin is not None and cp_mod.key_path(db_path).exists():
        log_key = cp_mod.log_signer(db_path, origin).verifier.vkey
    entries = [{"idx": idx, "entry": base64.b64encode(data).decode(), "leaf_hash": h.hex()}
               for idx, data, h in ledger_log.iter_entries(conn, start)]
    prefix = tree.frontier(ledger_log.SqliteSubtrees(conn), start)
    notes = [cp_mod.cosigned_note(conn, c) for c in cp_mod.all_checkpoints(conn)
             if c.size >= start]
    return {"format": FORMAT, "origin": origin, "log_key": log_key,
            "log_key_at_start": _key_at(conn, start, log_key),
            "witness_keys": cp_mod.witness_keys(conn), "exported_ms": now_ms,
            device_keys.PRIOR_SECTION: device_keys.prior_section(conn, start),
            "start": start, "prefix": [base64.b64encode(h).decode() for h in prefix],
            "size": size, "entries": entries, "checkpoints": notes}


def _key_at(conn: sqlite3.Connection, start: int, current: str | None) -> str | None:
    """The log key in force for a checkpoint of `start` entries, from the rotations."""
    rotations = []
    for _, data in ledger_log.decisions_before(conn, (logkey.ROTATION,), ledger_log.size(conn)):
        e = entries_mod.decode(data)
        if isinstance(e, entries_mod.Decision):
            rotations.append(e.body)
    before = [r for r in rotations if int(r.get("index", 0)) < start]
    if before:
        return str(before[-1].get("new_key"))
    return str(rotations[0].get("old_key")) if rotations else current


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
    start: int = 0
    checkpoints: int = 0
    cosignatures: int = 0
    device_signed: int = 0  # custody events whose device signature verified
    hmac_only: int = 0  # custody events of devices with no registered key then
    root: bytes = tree.EMPTY_ROOT
    extends: int | None = None  # size of the checkpoint or earlier bundle it extends
    witnessed: list[str] = field(default_factory=list)  # required witnesses that cosigned
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def size(self) -> int:
        return self.start + self.entries

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
    cosigners: frozenset[str]  # vkeys of the witnesses whose cosignature verified


@dataclass(frozen=True, slots=True)
class _Entries:
    start: int
    leaves: list[bytes]
    key_decisions: list[tuple[int, entries_mod.Decision]]

    def tree(self, prefix: Sequence[bytes]) -> tree.MemoryTree | tree.PrefixTree:
        if self.start == 0:
            return tree.MemoryTree(self.leaves)
        return tree.PrefixTree(self.start, prefix, self.leaves)


Tree = tree.MemoryTree | tree.PrefixTree
_EXTENDED = "extended checkpoint"


def verify(bundle_path: Path | str, *, log_key: str | None = None,
           witness_keys: Sequence[str] = (), checkpoints: Sequence[str] = (),
           require_witnesses: Sequence[str] = (), quorum: int | None = None,
           extends: str | None = None) -> Report:
    """Check a bundle offline.

    `log_key` pins the log's first key (or any later one its rotations name) instead of
    trusting the bundle's; `witness_keys` pin the witnesses whose cosignatures are checked;
    `checkpoints` are signed notes the auditor holds from elsewhere. `require_witnesses`:
    fail unless the latest checkpoint carries cosignatures of `quorum` of them (default
    all). `extends`: the text of the checkpoint note or the earlier bundle this one must
    extend (a partial bundle, exported with a start, needs it)."""
    report = Report()
    try:
        doc = json.loads(Path(bundle_path).read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        got = _read_entries(doc, report)
        t = got.tree(_prefix(doc))
    except (OSError, ValueError, binascii.Error) as exc:
        report.fail("bundle", f"cannot read {bundle_path}: {exc}")
        return report
    report.start, report.entries = got.start, len(got.leaves)
    report.root = tree.root(t, t.size)
    _check_device_signatures(doc, t, report)
    chain = _keys(doc, log_key, got, report)
    witnesses = _witnesses(doc, witness_keys, require_witnesses, report)
    if chain is None or witnesses is None:
        return report
    notes = [(f"checkpoint #{i}", n) for i, n in enumerate(doc.get("checkpoints") or [])]
    notes += [(f"supplied checkpoint #{i}", n) for i, n in enumerate(checkpoints)]
    earlier: dict[str, Any] | None = None
    if extends is not None:
        earlier = _extended(extends, got.start, notes, report)
    signed = _check_signatures(notes, chain, witnesses, report)
    # what the auditor held before first: on a tie, its failure is the one reported
    if earlier is not None:
        _check_extends_bundle(earlier, got, t, report)
    elif extends is not None:
        _check_extends_note(signed, t, got.start, report)
    elif got.start > 0:
        report.fail("prefix", f"this bundle holds entries {got.start}..{t.size - 1} only: "
                    "its first entries are hashes nothing you hold vouches for. Pass the "
                    "checkpoint or the earlier bundle it extends with --extends", 0,
                    got.start - 1)
    _check_roots(signed, t, got.start, report)
    if require_witnesses:
        _check_required(signed, t, [note.Verifier.parse(k) for k in require_witnesses],
                        quorum, report)
    return report


def _check_device_signatures(doc: dict[str, Any], t: Tree, report: Report) -> None:
    """Every custody event against its device's key at that point (no secret needed)."""
    found = device_keys.check_bundle(doc, t)
    report.device_signed, report.hmac_only = found.device_signed, found.hmac_only
    report.notes += found.notes
    for idx, reason in found.failures:
        report.fail(f"entry {idx}", reason, idx)


def _prefix(doc: dict[str, Any]) -> list[bytes]:
    return [base64.b64decode(h, validate=True) for h in doc.get("prefix") or []]


def _read_entries(doc: dict[str, Any], report: Report) -> _Entries:
    start = doc.get("start", 0)
    if not isinstance(start, int) or isinstance(start, bool) or start < 0:
        raise ValueError(f"start {start!r} is not a tree size")
    items = doc.get("entries") or []
    leaves, decisions = _check_entries(items, start, report)
    return _Entries(start, leaves, decisions)


def _keys(doc: dict[str, Any], pinned: str | None, got: _Entries,
          report: Report) -> logkey.KeyChain | None:
    """The chain of log keys: from the key the auditor pins (else the bundle's key at its
    start), through every rotation the entries hold."""
    try:
        bundled_start = doc.get("log_key_at_start") or doc.get("log_key")
        bundled = note.Verifier.parse(bundled_start) if bundled_start else None
        trusted = note.Verifier.parse(pinned) if pinned else None
    except NoteError as exc:
        report.fail("keys", str(exc))
        return None
    start = trusted or bundled
    if start is None:
        report.fail("log key", "the bundle has no log key and none was given: nothing is "
                    "signed, so nothing can be verified")
        return None
    chain = logkey.chain_from(start, got.key_decisions, got.start)
    if trusted is not None and bundled is not None and bundled != trusted:
        # the auditor may hold a later key: the bundle's chain must lead to it
        theirs = logkey.chain_from(bundled, got.key_decisions, got.start)
        if trusted in theirs.verifiers() and not theirs.problems:
            report.notes.append(f"the log key you pinned takes over from {bundled.vkey} by "
                                "signed rotations in the entries; earlier checkpoints are "
                                "checked with the keys it took over from")
            chain = theirs
        else:
            report.fail("log key", f"the bundle's log key {bundled.vkey} is not the pinned "
                        f"key {trusted.vkey}, nor does it hand over to it by signed rotations")
    for idx, problem in chain.problems:
        report.fail(f"entry {idx}", problem, idx)
    if doc.get("origin") not in (None, start.name):
        report.fail("origin", f"the bundle's origin {doc.get('origin')!r} is not the log "
                    f"key's name {start.name!r}")
    if not pinned:
        report.notes.append("log key taken from the bundle: pin it with --log-key for "
                            "assurance against a replaced key")
    if len(chain.segments) > 1:
        report.notes.append("log key rotations followed: " + ", ".join(
            f"from size {s}: {k.vkey}" for s, k in chain.segments))
    return chain


def _witnesses(doc: dict[str, Any], pinned: Sequence[str], required: Sequence[str],
               report: Report) -> list[note.Verifier] | None:
    try:
        chosen = list(pinned) or ([] if required else list(doc.get("witness_keys") or []))
        out: list[note.Verifier] = []
        for k in [*chosen, *required]:
            v = note.Verifier.parse(k)
            if v not in out:
                out.append(v)
    except NoteError as exc:
        report.fail("keys", str(exc))
        return None
    return out


def _check_entries(items: list[Any], start: int,
                   report: Report) -> tuple[list[bytes], list[tuple[int, entries_mod.Decision]]]:
    """Leaf hashes of the entries in index order, the key decisions among them, and each
    entry that is not as appended: edited, missing, or moved (to another place in the
    bundle, or holding the bytes the log recorded for another index)."""
    items = [i if isinstance(i, dict) else {} for i in items]
    idxs = [i.get("idx") for i in items]
    wanted = list(range(start, start + len(items)))
    if all(type(i) is int for i in idxs) and sorted(idxs) == wanted:
        at_item = {idx: pos for pos, idx in enumerate(idxs)}
        for pos, idx in enumerate(idxs):
            if idx != start + pos:
                report.fail(f"entry {idx}", f"moved: it is item {pos} of the bundle, where "
                            f"entry {start + pos} belongs (that one is at item "
                            f"{at_item[start + pos]})", idx)
        order = [at_item[i] for i in wanted]
    else:
        order = list(range(len(items)))
        prev = start - 1
        for idx in idxs:
            if idx != prev + 1:
                what = (f"is missing: the bundle goes from entry {prev} to entry {idx}"
                        if type(idx) is int and idx > prev + 1 else
                        f"is out of place: entry {prev} is followed by one that says it is "
                        f"{idx}")
                report.fail(f"entry {prev + 1}", what, prev + 1)
            prev = idx if type(idx) is int else prev + 1
    recorded = {str(i.get("leaf_hash")): i.get("idx") for i in items}
    actual = {i.get("idx"): _hash_of(i) for i in items}
    leaves: list[bytes] = []
    decisions: list[tuple[int, entries_mod.Decision]] = []
    for pos in order:
        item, at = items[pos], start + len(leaves)
        try:
            data = base64.b64decode(item["entry"], validate=True)
            e = entries_mod.decode(data)
            if isinstance(e, entries_mod.Decision) and e.decision in logkey.KINDS:
                decisions.append((at, e))
        except (KeyError, ValueError, binascii.Error, EntryFormatError) as exc:
            report.fail(f"entry {at}", f"not a canonical ledger entry: {exc}", at)
            data = str(item.get("entry")).encode()
        h = tree.leaf_hash(data)
        if item.get("leaf_hash") != h.hex():
            other = recorded.get(h.hex())
            # moved, not copied: the entry recorded at `other` is no longer there either
            if other is not None and other != at and actual.get(other) != h.hex():
                report.fail(f"entry {at}", f"moved: it holds the entry the log recorded as "
                            f"entry {other} when it was appended (its bytes hash to that "
                            "entry's leaf hash)", at)
            else:
                report.fail(f"entry {at}", f"its bytes hash to {h.hex()} but the log recorded "
                            f"leaf hash {item.get('leaf_hash')} when it was appended: the "
                            "entry was changed afterwards", at)
        leaves.append(h)
    return leaves, decisions


def _hash_of(item: dict[str, Any]) -> str | None:
    try:
        return tree.leaf_hash(base64.b64decode(item["entry"], validate=True)).hex()
    except (KeyError, ValueError, binascii.Error):
        return None


def _check_signatures(notes: list[tuple[str, str]], chain: logkey.KeyChain,
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
        log = chain.key_for(c.size)
        if c.origin != log.name:
            report.fail(label, f"origin {c.origin!r} is not the log's {log.name!r}")
            continue
        if n.verified_by(log) is not True:
            other = next((k for k in chain.verifiers() if k != log and n.verified_by(k)), None)
            why = (f"it is signed by {other.vkey}, which is not the log's key at that size"
                   if other else "the checkpoint was altered or its signature replaced or "
                   "forged")
            report.fail(label, f"the log's signature does not verify with {log.vkey}: {why}")
            continue
        cosigners: set[str] = set()
        for w in witnesses:
            ok = n.verified_by(w)
            if ok is False:
                report.fail(label, f"the cosignature of witness {w.name} does not verify")
            elif ok:
                report.cosignatures += 1
                cosigners.add(w.vkey)
        report.checkpoints += 1
        signed.append(_Signed(label, c, frozenset(cosigners)))
    return signed


def _matches(t: Tree, start: int, cp: cp_mod.Checkpoint) -> bool:
    return start <= cp.size <= t.size and tree.root(t, cp.size) == cp.root


def _check_roots(signed: list[_Signed], t: Tree, start: int, report: Report) -> None:
    """Each signed root against the entries; successive checkpoints for consistency.

    A checkpoint the entries do not give is placed after the last one they give that is
    known to be in *its* history. When the log key signed two histories (a fork), the
    checkpoints the entries give may be the forger's own: they count as a starting point
    only if a witness cosigned both them and the failing one (a witness never cosigns two
    inconsistent checkpoints); otherwise the range starts at the bundle's first entry."""
    ordered = sorted((s for s in signed if s.cp.size >= start), key=lambda s: s.cp.size)
    for s in signed:
        if s.cp.size < start:
            report.notes.append(f"{s.label} precedes this bundle's first entry {start}: its "
                                "root is not checked here")
    good = [s for s in ordered if _matches(t, start, s.cp)]
    bad = [s for s in ordered if s not in good]
    forked = any(g.cp.size >= b.cp.size for g in good for b in bad)
    for s in bad:
        if s.label.startswith(_EXTENDED):
            continue  # _check_extends_note says it in the auditor's terms
        n = s.cp.size
        if n > t.size:
            gone = (f"entry {t.size} was" if n - t.size == 1 else
                    f"entries {t.size}..{n - 1} were")
            report.fail(s.label, f"it signs {n} entries but the bundle holds {t.size}: {gone} "
                        "removed (the log was truncated)", t.size)
            continue
        below = [g for g in good if g.cp.size < n]
        trusted = [g for g in below if not forked or g.cosigners & s.cosigners]
        first = max((g.cp.size for g in trusted), default=0)
        other = next((g for g in reversed(good) if g.cp.size >= n), None)
        why = (f"; {other.label} matches the entries, so the log was rewritten and re-signed "
               "after this checkpoint (a forked history)" if other else "")
        skipped = sorted({g.cp.size for g in below if g not in trusted and g.cp.size > first})
        if skipped:
            why += (f". The entries also give checkpoints of size {', '.join(map(str, skipped))}"
                    ", but those may be the forger's: no witness cosigned both them and this "
                    "one, so the fork is placed from the last checkpoint that is in its history")
        report.fail(s.label, f"the entries do not give its signed root: an entry in "
                    f"{first}..{n - 1} was edited, removed, reordered or inserted after it "
                    f"was signed{why}", first, n - 1)
    for a, b in itertools.pairwise(ordered):
        if a.cp.size == b.cp.size and a.cp.root != b.cp.root:
            report.fail(b.label, f"it and {a.label} sign different roots for the same size: "
                        "the log signed two histories (a fork)", start, b.cp.size - 1)
        elif a in good and b in good and a.cp.size >= max(start, 1):
            proof = tree.consistency_proof(t, a.cp.size, b.cp.size)
            if not tree.verify_consistency(a.cp.size, b.cp.size, a.cp.root, b.cp.root, proof):
                report.fail(b.label, f"not consistent with {a.label}", a.cp.size,
                            b.cp.size - 1)


def _check_required(signed: list[_Signed], t: Tree, required: list[note.Verifier],
                    quorum: int | None, report: Report) -> None:
    """The latest checkpoint (the largest the entries give, else the largest) must carry
    cosignatures of `quorum` of the required witnesses (any note of it counts)."""
    need = len(required) if quorum is None else quorum
    if not 1 <= need <= len(required):
        report.fail("witnesses", f"a quorum of {need} out of {len(required)} required "
                    "witnesses: give 1 to the number of --require-witness keys")
        return
    if not signed:
        report.fail("witnesses", "no signed checkpoint: nothing any witness cosigned")
        return
    top = max(s.cp.size for s in signed)
    at_top = [s for s in signed if s.cp.size == top]
    chosen = next((s for s in at_top if _matches(t, report.start, s.cp)), at_top[0])
    cosigners = set().union(*(s.cosigners for s in at_top if s.cp == chosen.cp))
    have = [w for w in required if w.vkey in cosigners]
    report.witnessed = [w.name for w in have]
    if len(have) < need:
        missing = ", ".join(w.name for w in required if w not in have)
        report.fail(chosen.label, f"cosigned by {len(have)} of the required witnesses, "
                    f"{need} needed (missing: {missing}): no one outside the log vouches that "
                    "this is the history it shows everyone")
    if top < t.size:
        report.notes.append(f"entries {top}..{t.size - 1} come after the latest checkpoint: "
                            "no signature covers them yet")


def _extended(text: str, start: int, notes: list[tuple[str, str]],
              report: Report) -> dict[str, Any] | None:
    """An earlier bundle (returned, its checkpoints added to `notes`) or a checkpoint note
    (added to `notes` as the extended checkpoint)."""
    if not text.lstrip().startswith("{"):
        notes.append((_EXTENDED, text))
        return None
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
    except ValueError as exc:
        report.fail("extends", f"the earlier bundle cannot be read: {exc}")
        return None
    notes += [(f"earlier bundle's checkpoint #{i}", n)
              for i, n in enumerate(doc.get("checkpoints") or [])
              if isinstance(n, str) and _size_of(n) >= start]
    return doc


def _size_of(text: str) -> int:
    try:
        return cp_mod.Checkpoint.parse(note.parse(text).text).size
    except NoteError:
        return -1


def _check_extends_note(signed: list[_Signed], t: Tree, start: int, report: Report) -> None:
    held = [s for s in signed if s.label.startswith(_EXTENDED)]
    if not held:
        report.fail("extends", "the checkpoint to extend is not a checkpoint signed by the "
                    "log's key (see the failure above)")
        return
    cp = held[0].cp
    if cp.size < start:
        report.fail("extends", f"the bundle starts at entry {start}, after the checkpoint you "
                    f"hold (size {cp.size}): export it with --since-checkpoint on that file")
    elif cp.size > t.size:
        report.fail("extends", f"the bundle holds {t.size} entries, fewer than the checkpoint "
                    f"you hold (size {cp.size}): the log was truncated", t.size)
    elif not _matches(t, start, cp):
        report.fail("extends", f"it does not extend the checkpoint you hold (size {cp.size}): "
                    f"its first {cp.size} entries do not give that root, so the log rewrote or "
                    f"forked its history in 0..{cp.size - 1}", 0, cp.size - 1)
    else:
        report.extends = cp.size


def _check_extends_bundle(doc: dict[str, Any], got: _Entries, t: Tree, report: Report) -> None:
    """The earlier bundle's tree must be a prefix of this one; else name the first entry
    where they differ (the fork) and where that entry went, if it moved."""
    try:
        scratch = Report()
        old = _read_entries(doc, scratch)
        ot = old.tree(_prefix(doc))
    except (ValueError, binascii.Error) as exc:
        report.fail("extends", f"the earlier bundle cannot be read: {exc}")
        return
    end = ot.size
    if end < got.start:
        report.fail("extends", f"the bundle starts at entry {got.start}, after the end of the "
                    f"earlier bundle ({end} entries): export it with --since-size {end}")
        return
    lo, hi = max(old.start, got.start), min(end, t.size)
    if end <= t.size and tree.root(t, end) == tree.root(ot, end):
        report.extends = end
        return
    for i in range(lo, hi):
        mine, theirs = got.leaves[i - got.start], old.leaves[i - old.start]
        if mine != theirs:
            where = next((j + got.start for j, h in enumerate(got.leaves) if h == theirs), None)
            went = (f"; that entry is now entry {where} (moved)" if where is not None else
                    "; that entry is nowhere in this bundle")
            report.fail(f"entry {i}", f"the log forked at entry {i}: it differs from entry {i} "
                        f"of the earlier bundle you hold{went}", i)
            return
    if end > t.size:
        report.fail("extends", f"the bundle holds {t.size} entries, fewer than the earlier "
                    f"bundle's {end}: the log was truncated", t.size)
    else:
        report.fail("extends", f"it does not extend the earlier bundle: the difference lies "
                    f"before entry {lo}, where the two bundles start to overlap", 0, lo - 1)
