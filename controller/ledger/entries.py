"""The canonical byte form of a ledger entry (version 1); FORMAT.md and vectors/ledger.json.

A length-prefixed binary layout in the style of RFC 8446 §3 (big-endian integers,
``opaque x<a..b>`` = a length of the smallest unsigned type holding b, then the bytes)::

    entry       = "PWL" 0x01 kind:u8 body
    kind 0x01   device_message:  device_id<1..2^8-1>  channel<1..2^8-1>  topic<1..2^16-1>
                                 seq:u64  received_ms:u64  wire<0..2^32-1>
    kind 0x02   decision:        kind<1..2^8-1>  actor<1..2^16-1>  time_ms:u64
                                 body<2..2^32-1>

Strings are UTF-8. ``wire`` is the device's message exactly as received (envelope JSON,
newline, key id and HMAC), so its signature can be checked again from the ledger alone.
A decision's ``body`` is a JSON object in canonical form: sorted keys, no whitespace,
UTF-8 (not ASCII escapes), no NaN/Infinity. Verification never re-serialises anything: it
hashes the stored bytes; the canonical form only makes the same decision give the same bytes.
Decoding demands the exact layout (no trailing byte, canonical body), so one entry has one
encoding and a leaf hash identifies it.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from controller.ledger.errors import EntryFormatError

MAGIC = b"PWL\x01"
DEVICE_MESSAGE, DECISION = "device_message", "decision"
_KIND_BYTES = {DEVICE_MESSAGE: 1, DECISION: 2}
# Decision kinds in use; new features add theirs (any name matching _NAME is accepted).
DECISION_KINDS = ("rejection", "rejection_summary", "alert", "command", "key_rotation",
                  "provisioning", "status_change", "lost_range", "hold", "limits",
                  "declare_lost", "audit_mismatch")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
_U64 = struct.Struct(">Q")
_MAX_U64 = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """An accepted device message: its exact wire bytes and how the controller received it."""

    device_id: str
    channel: str
    topic: str
    seq: int
    received_ms: int
    wire: bytes

    @property
    def kind(self) -> str:
        return DEVICE_MESSAGE

    @property
    def time_ms(self) -> int:
        return self.received_ms


@dataclass(frozen=True, slots=True)
class Decision:
    """Something the controller decided (a rejection, an alert, a command, ...) and who did."""

    decision: str
    actor: str
    time_ms: int
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return DECISION


Entry = DeviceMessage | Decision


def canonical_json(body: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8; EntryFormatError for what JSON cannot hold."""
    if not isinstance(body, dict):
        raise EntryFormatError(f"a decision body must be a JSON object, not {type(body).__name__}")
    try:
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise EntryFormatError(f"a decision body must be plain JSON: {exc}") from exc


def encode(entry: Entry) -> bytes:
    """The canonical bytes of an entry."""
    if isinstance(entry, DeviceMessage):
        return b"".join((MAGIC, b"\x01", _str(entry.device_id, 1, "device_id"),
                         _str(entry.channel, 1, "channel"), _str(entry.topic, 2, "topic"),
                         _u64(entry.seq, "seq"), _u64(entry.received_ms, "received_ms"),
                         _opaque(entry.wire, 4, "wire")))
    if not _NAME.match(entry.decision):
        raise EntryFormatError(f"decision kind {entry.decision!r}: use 1-32 of a-z 0-9 _, "
                               "starting with a letter, e.g. 'rejection'")
    return b"".join((MAGIC, b"\x02", _str(entry.decision, 1, "decision"),
                     _str(entry.actor, 2, "actor"), _u64(entry.time_ms, "time_ms"),
                     _opaque(canonical_json(entry.body), 4, "body")))


def device_message(*, device_id: str, channel: str, topic: str, seq: int, received_ms: int,
                   wire: bytes) -> bytes:
    """Canonical bytes of an accepted device message (what `store.append` takes)."""
    return encode(DeviceMessage(device_id, channel, topic, seq, received_ms, wire))


def decision(*, kind: str, actor: str, time_ms: int, body: dict[str, Any]) -> bytes:
    """Canonical bytes of a controller decision (what `store.append` takes)."""
    return encode(Decision(kind, actor, time_ms, body))


def decode(data: bytes) -> Entry:
    """Parse canonical bytes; EntryFormatError says what is wrong and where."""
    r = _Reader(data)
    if r.take(4, "magic") != MAGIC:
        raise EntryFormatError("not a ledger entry: it must start with 'PWL' 0x01")
    kind = r.take(1, "kind")[0]
    out: Entry
    if kind == 1:
        out = DeviceMessage(r.str(1, "device_id"), r.str(1, "channel"), r.str(2, "topic"),
                            r.u64("seq"), r.u64("received_ms"), r.opaque(4, "wire"))
    elif kind == 2:
        name, actor, time_ms = r.str(1, "decision"), r.str(2, "actor"), r.u64("time_ms")
        raw = r.opaque(4, "body")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EntryFormatError(f"decision body is not JSON: {exc}") from exc
        if not isinstance(body, dict) or canonical_json(body) != raw:
            raise EntryFormatError("decision body is not a JSON object in canonical form")
        out = Decision(name, actor, time_ms, body)
    else:
        raise EntryFormatError(f"unknown entry kind byte {kind}")
    if r.pos != len(data):
        raise EntryFormatError(f"{len(data) - r.pos} bytes after the end of the entry")
    if encode(out) != data:  # e.g. a decision name outside the allowed alphabet
        raise EntryFormatError("the entry's fields do not have a canonical encoding")
    return out


def to_json(entry: Entry) -> dict[str, Any]:
    """A readable view for people and the API (wire bytes as text when they are UTF-8)."""
    if isinstance(entry, Decision):
        return {"kind": DECISION, "decision": entry.decision, "actor": entry.actor,
                "time_ms": entry.time_ms, "body": entry.body}
    view: dict[str, Any] = {"kind": DEVICE_MESSAGE, "device_id": entry.device_id,
                            "channel": entry.channel, "topic": entry.topic, "seq": entry.seq,
                            "received_ms": entry.received_ms}
    try:
        view["wire"] = entry.wire.decode("utf-8")
    except UnicodeDecodeError:
        view["wire_b64"] = base64.b64encode(entry.wire).decode()
    return view


def _u64(value: int, name: str) -> bytes:
    if not isinstance(value, int) or not 0 <= value <= _MAX_U64:
        raise EntryFormatError(f"{name} must be an integer in 0..2^64-1, not {value!r}")
    return _U64.pack(value)


def _opaque(data: bytes, width: int, name: str) -> bytes:
    if len(data) >= 1 << (8 * width):
        raise EntryFormatError(f"{name} is {len(data)} bytes, more than {width} length bytes hold")
    return len(data).to_bytes(width, "big") + data


def _str(text: str, width: int, name: str) -> bytes:
    if not text:
        raise EntryFormatError(f"{name} must not be empty")
    return _opaque(text.encode("utf-8"), width, name)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, name: str) -> bytes:
        if self.pos + n > len(self.data):
            raise EntryFormatError(f"entry ends inside {name} (byte {self.pos}, needs {n})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u64(self, name: str) -> int:
        return int(_U64.unpack(self.take(8, name))[0])

    def opaque(self, width: int, name: str) -> bytes:
        return self.take(int.from_bytes(self.take(width, name), "big"), name)

    def str(self, width: int, name: str) -> str:
        raw = self.opaque(width, name)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EntryFormatError(f"{name} is not UTF-8") from exc
