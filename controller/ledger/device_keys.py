"""Device keys: each device's own ECDSA P-256 key, and the custody events it signed.

The HMAC on every message authenticates the transport, but the controller holds the HMAC
secrets, so whoever runs it could make a message that passes as the device's. A custody
event (channel ``evt``) from an agent with a device key also carries an ``es256`` line
(protocols/envelope.py): ECDSA P-256 with SHA-256, r || s in hex, s in its low form (at
most n/2, so one message has one signature), over ``b"pw1-dev\\n" + topic + b"\\n" + JSON``.
The private key never leaves the device; the controller and any auditor hold only the
public key, an uncompressed SEC1 point as 130 lowercase hex digits.

Which key belongs to which device is a ledger decision of kind ``device_key`` (body
``{"device_id", "pub", "source": "birth" | "admin", "replaces": <pub or null>}``): the
first authentic birth carrying ``pub`` (trust on first use under the provisioning secret),
or an admin. ``check_log`` replays a ledger's entries in order and checks every custody
event against the key registered for its device at that point, with no secret at all.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from controller.ledger import entries as entries_mod
from controller.ledger import tree
from controller.ledger.entries import Decision, DeviceMessage, Entry
from controller.ledger.errors import EntryFormatError
from protocols import envelope, topics
from protocols.bodies import KINDS

DECISION = "device_key"
SOURCES = ("birth", "admin")
PUB_HEX_LEN = 130
# the order n of the P-256 group (SEC 2, secp256r1)
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
CUSTODY_KINDS = frozenset(KINDS["evt"])
_HEX = frozenset("0123456789abcdef")


class DeviceKeyError(ValueError):
    """A public key that is not an uncompressed P-256 point in lowercase hex."""


def check_pub(pub: object) -> str:
    """``pub`` when it is a valid device public key; DeviceKeyError says what is wrong."""
    if not isinstance(pub, str) or len(pub) != PUB_HEX_LEN or not set(pub) <= _HEX:
        raise DeviceKeyError("a device public key is 130 lowercase hex digits: '04', then "
                             "X and Y of a P-256 point (uncompressed SEC1)")
    if not pub.startswith("04"):
        raise DeviceKeyError("a device public key must be an uncompressed point (start '04')")
    _public_key(pub)
    return pub


@lru_cache(maxsize=4096)
def _public_key(pub: str) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pub))
    except ValueError as exc:
        raise DeviceKeyError("that public key is not a point on the P-256 curve") from exc


def verify(pub: str, topic: str, json_bytes: bytes, es256: str) -> str | None:
    """None when ``es256`` (r || s hex) is ``pub``'s signature of this message; else why not."""
    try:
        key = _public_key(check_pub(pub))
    except DeviceKeyError as exc:
        return f"the registered key is unusable: {exc}"
    if len(es256) != 128 or not set(es256) <= _HEX:
        return "the es256 signature is not 128 lowercase hex digits"
    r, s = int(es256[:64], 16), int(es256[64:], 16)
    if not (0 < r < N and 0 < s < N):
        return "r or s of the es256 signature is out of range"
    if s > N // 2:
        return "the es256 signature is not in low-s form (a device always sends s <= n/2)"
    try:
        key.verify(encode_dss_signature(r, s), envelope.device_signed_bytes(topic, json_bytes),
                   ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "the es256 signature does not verify under the device's registered key"
    return None


def check_wire(pub: str, topic: str, wire: bytes) -> str | None:
    """None when the message ``wire`` carries a valid device signature under ``pub``."""
    try:
        signed = envelope.split_signed(wire)[0]
        json_bytes, es256 = envelope.device_line(signed)
    except envelope.EnvelopeError as exc:
        return f"not an envelope: {exc}"
    if es256 is None:
        return "it has no es256 line (only the HMAC signs it, and the controller holds that secret)"
    return verify(pub, topic, json_bytes, es256)


def has_device_line(wire: bytes) -> bool:
    """Whether the message carries an es256 line (checked or not)."""
    try:
        return envelope.device_line(envelope.split_signed(wire)[0])[1] is not None
    except envelope.EnvelopeError:
        return False


def decision_body(device_id: str, pub: str, source: str, replaces: str | None) -> dict[str, Any]:
    """The body of a ``device_key`` decision (FORMAT.md)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
    return {"device_id": device_id, "pub": pub, "source": source, "replaces": replaces}


@dataclass
class LogCheck:
    """What ``check_log`` found: custody events signed by their device, events signed only
    by the HMAC (their device had no key yet), failures (entry index, what is wrong) and
    notes (key registrations an auditor should look at)."""

    device_signed: int = 0
    hmac_only: int = 0
    keys: int = 0
    failures: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Replay:
    def __init__(self) -> None:
        self.out = LogCheck()
        self.pub: dict[str, str] = {}
        self.birth_pub: dict[str, str] = {}
        self.prior = False

    def fail(self, idx: int, reason: str) -> None:
        self.out.failures.append((idx, reason))

    def decision(self, idx: int, d: Decision) -> None:
        b = d.body
        dev, pub, source = b.get("device_id"), b.get("pub"), b.get("source")
        if not isinstance(dev, str) or source not in SOURCES:
            self.fail(idx, "a device_key decision without a device_id or a source of "
                      f"{' or '.join(SOURCES)}")
            return
        try:
            check_pub(pub)
        except DeviceKeyError as exc:
            self.fail(idx, f"device_key decision for {dev}: {exc}")
            return
        assert isinstance(pub, str)
        current = self.pub.get(dev)
        if b.get("replaces") != current:
            self.fail(idx, f"device_key decision for {dev} says it replaces "
                      f"{_short(b.get('replaces'))}, but the key registered then was "
                      f"{_short(current)}")
        if source == "birth" and not self.prior:
            if current is not None:
                self.fail(idx, f"device_key decision for {dev} from a birth, but the device "
                          "already had a key: only an admin replaces a key")
            elif self.birth_pub.get(dev) != pub:
                self.fail(idx, f"device_key decision for {dev} from a birth, but no birth of "
                          "the device before it carried that key")
        elif source == "admin":
            self.out.notes.append(f"entry {idx}: {d.actor} set the device key of {dev} to "
                                  f"{_short(pub)} (replaces {_short(current)}): events of "
                                  "it from here on are checked under that key")
        self.pub[dev] = pub
        self.out.keys += 1

    def message(self, idx: int, m: DeviceMessage) -> None:
        try:
            _, topic_dev, channel = topics.parse(m.topic)
        except topics.TopicError as exc:
            self.fail(idx, f"device message on an invalid topic: {exc}")
            return
        if topic_dev != m.device_id or channel != m.channel:
            self.fail(idx, f"entry says device {m.device_id!r} channel {m.channel!r}, its "
                      f"topic {m.topic!r} says otherwise")
            return
        try:
            fields = json.loads(envelope.split(m.wire)[0])
        except (envelope.EnvelopeError, ValueError, RecursionError):
            fields = None  # not JSON: still a custody event when its topic says evt
        kind = fields.get("kind") if isinstance(fields, dict) else None
        kind = kind if isinstance(kind, str) else None
        if channel == "state" and kind == "birth":
            body = fields.get("body") if isinstance(fields, dict) else None
            if isinstance(body, dict) and isinstance(body.get("pub"), str):
                self.birth_pub[topic_dev] = body["pub"]
            return
        if channel != "evt" and kind not in CUSTODY_KINDS:
            return
        pub = self.pub.get(topic_dev)
        if pub is None:
            self.out.hmac_only += 1
            return
        problem = check_wire(pub, m.topic, m.wire)
        if problem is None:
            self.out.device_signed += 1
            return
        seq = f" seq {m.seq}" if channel == "evt" else ""
        self.fail(idx, f"custody event of {topic_dev}{seq} was not made by the device: "
                  f"{problem}")


def check_log(entries: Iterable[tuple[int, Entry]],
              prior: Iterable[tuple[int, Decision]] = ()) -> LogCheck:
    """Replay ``(index, entry)`` pairs in log order: every custody event of a device with a
    registered key must carry a valid es256 line under the key registered at that point.

    A custody event is a device message on an ``evt`` topic, or whose JSON kind is one
    (weighing, alarm, gap, refused), wherever it was filed. ``device_key`` decisions are
    checked too: ``replaces`` must name the key then registered, and one from a birth
    must follow a birth of that device carrying that key and may not replace a key.
    ``prior``: the ``device_key`` decisions before a partial bundle's first entry (their
    births are not in it: only their ``replaces`` chain is checked).
    """
    replay = _Replay()
    for idx, d in prior:
        replay.prior = True
        replay.decision(idx, d)
    replay.prior = False
    for idx, e in entries:
        if isinstance(e, DeviceMessage):
            replay.message(idx, e)
        elif e.decision == DECISION:
            replay.decision(idx, e)
    return replay.out


def _short(pub: object) -> str:
    return f"{pub[:12]}…" if isinstance(pub, str) else "no key"


PRIOR_SECTION = "device_keys_before"


def prior_section(conn: Any, start: int) -> list[dict[str, Any]]:
    """For a partial bundle starting at entry ``start``: every ``device_key`` decision
    before it, each with its RFC 9162 inclusion proof in the tree of ``start`` entries
    (which the bundle's prefix fixes), so verify knows each device's key at the start."""
    from controller.storage import ledger_log

    return [{"idx": idx, "entry": base64.b64encode(data).decode(),
             "proof": [base64.b64encode(h).decode()
                       for h in ledger_log.inclusion_proof(conn, idx, start)]}
            for idx, data in ledger_log.decisions_before(conn, (DECISION,), start)]


def check_bundle(doc: dict[str, Any], t: Any) -> LogCheck:
    """``check_log`` over a bundle's entries (``t``: its tree, for a partial bundle's
    prior key decisions, which must be included in the tree of its first ``start``
    entries). Entries that do not decode are left to the bundle's own checks."""
    start = doc.get("start") or 0
    prior: list[tuple[int, Decision]] = []
    bad: list[tuple[int, str]] = []
    if isinstance(start, int) and start > 0:
        root_at_start = tree.root(t, start)
        for item in doc.get(PRIOR_SECTION) or []:
            idx, where = _prior(item, start, root_at_start)
            if isinstance(where, Decision):
                prior.append((idx, where))
            else:
                bad.append((idx, where))
    items = sorted((i for i in doc.get("entries") or []
                    if isinstance(i, dict) and type(i.get("idx")) is int),
                   key=lambda i: int(i["idx"]))
    out = check_log(_decoded(items), prior)
    out.failures[:0] = bad
    if isinstance(start, int) and start > 0:
        out.notes.append(f"device keys at entry {start}: the {len(prior)} device_key "
                         "decisions before it that the bundle carries (each proven in the "
                         "log); one left out would let its device's events count as "
                         "HMAC-only: verify a full bundle to rule that out")
    return out


def _prior(item: Any, start: int, root_at_start: bytes) -> tuple[int, Decision | str]:
    idx = item.get("idx") if isinstance(item, dict) else None
    if type(idx) is not int or not 0 <= idx < start:
        return -1, f"a device key before the bundle's start with index {idx!r}"
    try:
        data = base64.b64decode(item["entry"], validate=True)
        path = [base64.b64decode(h, validate=True) for h in item.get("proof") or []]
        e = entries_mod.decode(data)
    except (KeyError, ValueError, binascii.Error, EntryFormatError) as exc:
        return idx, f"device key decision {idx} (before the start) does not decode: {exc}"
    if not isinstance(e, Decision) or e.decision != DECISION:
        return idx, f"entry {idx}, given as a device key decision, is not one"
    if not tree.verify_inclusion(idx, start, tree.leaf_hash(data), path, root_at_start):
        return idx, (f"device key decision {idx} is not in the log's first {start} entries: "
                     "its inclusion proof fails")
    return idx, e


def _decoded(items: Iterable[dict[str, Any]]) -> Iterable[tuple[int, Entry]]:
    for item in items:
        try:
            yield int(item["idx"]), entries_mod.decode(
                base64.b64decode(item["entry"], validate=True))
        except (KeyError, ValueError, binascii.Error, EntryFormatError):
            continue
