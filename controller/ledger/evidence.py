"""A lot's evidence pack: its EPCIS document with the ledger entries behind every event,
their RFC 9162 inclusion proofs against one signed checkpoint, and the devices' public keys;
and the offline check of a pack.

Pack (``"format": "portwatch-evidence-pack/1"``)::

    {"format", "origin", "lot", "created_ms", "log_key": vkey, "checkpoint": signed note,
     "epcis": the EPCIS 2.0 document (controller/epcis.py),
     "proofs": [inclusion proof documents (controller/ledger/proofs.py), one per entry]}

Like a partial bundle (``ledger export --since-size``), a pack holds a few entries of the
log, not all of it: each is checked by its inclusion path to the checkpoint's root, and the
checkpoint by the log key, so the auditor trusts the pack exactly as far as the log key they
pin (``--log-key``; the pack's own key only says the pack is self-consistent). ``verify``
checks: the format; the checkpoint's signature; every proof leads from its entry's bytes to
that checkpoint's root; every EPCIS eventID is the CBV 2.0 hash of its event; every event's
ledger references have a proof; each referenced decision names the lot or a lot it is
linked with; each custody event carries a valid signature of its device's public key in
force at that point of the log. The keys are not asserted by the pack: they are the
``device_key`` decisions registering them, proved like the other entries.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from controller import epcis
from controller.errors import InvalidInput
from controller.ledger import checkpoint as cp_mod
from controller.ledger import device_keys, note, proofs
from controller.ledger import entries as entries_mod
from controller.ledger.errors import LedgerError, NoteError
from controller.storage import ledger_log
from controller.storage import trace_reads as reads
from protocols import envelope

FORMAT = "portwatch-evidence-pack/1"


def build(conn: sqlite3.Connection, lot_id: str, *, log_key: str, now_ms: int) -> dict[str, Any]:
    """The evidence pack of ``lot_id``. InvalidInput when an entry behind its events is not
    covered by a signed checkpoint yet (sign one with `portwatch ledger checkpoint`);
    NotFound for an unknown lot."""
    doc = epcis.document(conn, lot_id, now_ms=now_ms)
    indexes = sorted({i for refs in doc["pw:ledgerRefs"].values() for i in refs})
    latest = cp_mod.latest(conn)
    if indexes and (latest is None or latest.size <= indexes[-1]):
        raise InvalidInput(f"ledger entry {indexes[-1]} behind lot {lot_id!r} is not under a "
                           "signed checkpoint yet: run `portwatch ledger checkpoint`, then "
                           "build the pack again")
    size = latest.size if latest else ledger_log.size(conn)
    pack_proofs = [proofs.inclusion(conn, i, size) for i in indexes]
    messages = [(int(p["leaf_index"]), str(p["view"]["device_id"])) for p in pack_proofs
                if p["view"].get("kind") == entries_mod.DEVICE_MESSAGE]
    keys = _key_entries(conn, messages)
    pack_proofs += [proofs.inclusion(conn, i, size) for i in keys if i not in set(indexes)]
    return {"format": FORMAT, "origin": ledger_log.get_meta(conn, "origin"), "lot": lot_id,
            "created_ms": now_ms, "log_key": log_key,
            "checkpoint": cp_mod.cosigned_note(conn, latest) if latest else None,
            "epcis": doc, "proofs": sorted(pack_proofs, key=lambda p: int(p["leaf_index"]))}


def _key_entries(conn: sqlite3.Connection, messages: list[tuple[int, str]]) -> list[int]:
    """Indexes of the ``device_key`` decisions in force at each custody message."""
    registered: dict[str, list[int]] = {}
    for idx, data in reads.decisions(conn, (device_keys.DECISION,)):
        e = entries_mod.decode(data)
        if isinstance(e, entries_mod.Decision):
            registered.setdefault(str(e.body.get("device_id")), []).append(idx)
    out = set()
    for at, device in messages:
        before = [i for i in registered.get(device, []) if i < at]
        if before:
            out.add(before[-1])
    return sorted(out)


def is_pack(path: Path | str) -> bool:
    """Whether the JSON file at ``path`` is an evidence pack (not a ledger bundle)."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def verify(path: Path | str, *, log_key: str | None = None,
           require_witnesses: Sequence[str] = ()) -> tuple[list[str], dict[str, Any]]:
    """(problems, summary) of the pack at ``path``; no problem: it verifies. ``log_key``
    pins the log's key instead of trusting the pack's; ``require_witnesses`` (vkeys): the
    pack's checkpoint must carry a valid cosignature of each."""
    try:
        doc = json.loads(Path(path).read_text())
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document")
        key = note.Verifier.parse(log_key or str(doc["log_key"]))
        witnesses = [note.Verifier.parse(w) for w in require_witnesses]
    except (OSError, ValueError, KeyError, LedgerError) as exc:
        return [f"cannot read {path}: {exc}"], {}
    try:
        problems, summary = _verify(doc, key)
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        return [f"malformed evidence pack: {exc!r}"], {}
    try:
        signed = note.parse(str(doc.get("checkpoint")))
    except NoteError:
        return problems, summary  # already named by _verify
    for w in witnesses:
        if signed.verified_by(w) is not True:
            problems.append(f"the pack's checkpoint is not cosigned by witness {w.name}: no "
                            "one outside the log vouches for it")
    summary["witnessed"] = [w.name for w in witnesses]
    return problems, summary


def _verify(doc: dict[str, Any], key: note.Verifier) -> tuple[list[str], dict[str, Any]]:
    problems: list[str] = []
    cp_text = doc.get("checkpoint")
    cp: cp_mod.Checkpoint | None = None
    try:
        signed = note.parse(str(cp_text))
        cp = cp_mod.Checkpoint.parse(signed.text)
        if signed.verified_by(key) is not True:
            problems.append(f"the pack's checkpoint is not signed by {key.name}")
    except NoteError as exc:
        problems.append(f"the pack's checkpoint: {exc}")
    by_index: dict[int, dict[str, Any]] = {}
    for p in doc["proofs"]:
        idx = int(p["leaf_index"])
        by_index[idx] = p
        for problem in proofs.check(p, key):
            problems.append(f"entry {idx}: {problem}")
        if cp is not None and (int(p["tree_size"]), p["root"]) != (
                cp.size, base64.b64encode(cp.root).decode()):
            problems.append(f"entry {idx}: proved against another tree than the pack's "
                            "checkpoint")
    events = doc["epcis"]["epcisBody"]["eventList"]
    refs: dict[str, list[int]] = doc["epcis"].get("pw:ledgerRefs") or {}
    for n, event in enumerate(events):
        body = {k: v for k, v in event.items() if k not in ("eventID", "errorDeclaration")}
        if epcis.event_hash(body) != event.get("eventID"):
            problems.append(f"EPCIS event #{n} ({event.get('type')}): its eventID is not "
                            "the hash of its content (the event was changed)")
        for idx in refs.get(str(event.get("eventID")), []):
            if idx not in by_index:
                problems.append(f"EPCIS event #{n}: ledger entry {idx} has no proof in "
                                "the pack")
    checked, entry_problems = _check_entries(doc, by_index)
    problems += entry_problems
    problems += _check_content(events, refs, by_index)
    summary = {"lot": doc.get("lot"), "events": len(events), "entries": len(by_index),
               "checkpoint_size": cp.size if cp else None, "log_key": key.name,
               "device_signed": checked}
    return problems, summary


def _check_entries(doc: dict[str, Any],
                   by_index: dict[int, dict[str, Any]]) -> tuple[int, list[str]]:
    """(custody events checked against their device's key, problems). Each decision names
    the lot (or a lot of a blend or train the lot is in); each custody event of a device
    whose key registration is in the pack carries that device's signature."""
    problems: list[str] = []
    keys: dict[str, list[tuple[int, str]]] = {}  # device -> [(idx, pub)] in log order
    checked = 0
    lots = {str(doc["lot"])}
    for ev in doc["epcis"]["epcisBody"]["eventList"]:
        for field in ("inputQuantityList", "outputQuantityList"):
            lots |= {unquote(q["epcClass"].rsplit(":", 1)[-1]) for q in ev.get(field, [])}
    for idx, p in sorted(by_index.items()):
        try:
            entry = entries_mod.decode(base64.b64decode(p["entry"], validate=True))
        except (LedgerError, ValueError) as exc:
            problems.append(f"entry {idx}: not a ledger entry: {exc}")
            continue
        if isinstance(entry, entries_mod.Decision) and entry.decision == device_keys.DECISION:
            keys.setdefault(str(entry.body.get("device_id")), []).append(
                (idx, str(entry.body.get("pub"))))
        elif isinstance(entry, entries_mod.Decision):
            named = {str(entry.body.get(f)) for f in ("lot_id", "lot", "blend_lot")}
            for nested in (entry.body.get("order"), entry.body.get("lot")):
                if isinstance(nested, dict):  # an order's fields, a lot's declaration
                    named |= {str(nested.get("lot")), str(nested.get("lot_id"))}
            for item in entry.body.get("cars") or entry.body.get("inputs") or []:
                if isinstance(item, dict):  # a train's cars, a blend's inputs
                    named.add(str(item.get("lot")))
            if entry.decision == "trip" or named & lots:
                continue  # a trip's decisions name its trip; the trip row names the lot
            problems.append(f"entry {idx}: a {entry.decision} decision that names none of "
                            f"the lots {sorted(lots)}")
        else:
            in_force = [pub for at, pub in keys.get(entry.device_id, []) if at < idx]
            if in_force:
                checked += 1
                why = device_keys.check_wire(in_force[-1], entry.topic, entry.wire)
                if why is not None:
                    problems.append(f"entry {idx} ({entry.device_id} seq {entry.seq}): {why}")
    return checked, problems


# -- each event's time and kg must be in the entries that prove it ---------------------------

def _facts(p: dict[str, Any]) -> tuple[set[int], set[float]]:
    """(times in ms, numbers) an entry states: a decision's time and body, a device
    message's envelope time and body (its exact signed JSON)."""
    entry = entries_mod.decode(base64.b64decode(p["entry"], validate=True))
    if isinstance(entry, entries_mod.Decision):
        times, body = {entry.time_ms}, entry.body
    else:
        fields = json.loads(envelope.device_line(envelope.split_signed(entry.wire)[0])[0])
        times, body = {int(fields.get("ts") or 0)}, fields.get("body") or {}
    numbers: set[float] = set()
    _walk(body, times, numbers)
    return times, numbers


def _walk(value: Any, times: set[int], numbers: set[float], key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _walk(v, times, numbers, k)
    elif isinstance(value, list):
        for v in value:
            _walk(v, times, numbers, key)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        numbers.add(float(value))
        if key.endswith(("_ts", "_ms")) or key == "ts":
            times.add(int(value))


def _check_content(events: list[dict[str, Any]], refs: dict[str, list[int]],
                   by_index: dict[int, dict[str, Any]]) -> list[str]:
    """An event whose id was recomputed after a change still has to agree with the signed
    entries behind it: its time is one they state, and each of its input and carried
    quantities is a number they state (a blend's output is the sum of its inputs)."""
    problems = []
    for n, event in enumerate(events):
        proved = [by_index[i] for i in refs.get(str(event.get("eventID")), []) if i in by_index]
        if not proved:
            continue
        times: set[int] = set()
        numbers: set[float] = set()
        for p in proved:
            try:
                t, v = _facts(p)
            except (LedgerError, ValueError, envelope.EnvelopeError):
                continue  # a malformed entry: its proof check names it
            times |= t
            numbers |= v
        if event.get("eventTime") not in {epcis.iso(t) for t in times}:
            problems.append(f"EPCIS event #{n} ({event.get('type')}): its time "
                            f"{event.get('eventTime')} is in none of its ledger entries")
        inputs = [float(q["quantity"]) for q in event.get("inputQuantityList", [])
                  if "quantity" in q]
        for field in ("quantityList", "childQuantityList", "inputQuantityList",
                      "outputQuantityList"):
            for q in event.get(field, []):
                if "quantity" not in q:
                    continue
                kg = float(q["quantity"])
                if kg in numbers or (field == "outputQuantityList" and kg == sum(inputs)):
                    continue
                problems.append(f"EPCIS event #{n} ({event.get('type')}): {kg:g} {q.get('uom')}"
                                " is in none of its ledger entries")
    return problems
