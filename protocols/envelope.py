"""The signed envelope every portwatch MQTT message travels in (PROTOCOL.md, "Envelope").

Wire form (UTF-8)::

    <JSON object>\\n<key id>:<64 lowercase hex digits of HMAC-SHA256>

The HMAC covers ``b"pw1\\n" + topic + b"\\n" + <JSON bytes exactly as sent>``, so the
receiver checks the bytes it got and never re-serialises JSON (MicroPython dicts
are unordered and its ``json`` has no ``sort_keys``). The key id sits outside the
JSON so that the receiver finds the key and checks the signature before it parses
anything; a wrong key id simply fails the check.

JSON fields: ``v`` (1), ``dev`` (device id, equal to the topic's), ``boot`` (boot
counter, never decreases), ``seq`` (custody sequence number on ``evt``; per-boot
counter elsewhere), ``ts`` (device time, ms since the Unix epoch, UTC), ``kind``
and ``body`` (an object). Unknown extra fields are ignored for forward compatibility.
"""

import json
from binascii import hexlify

from protocols.hmac_sha256 import equal, hmac_sha256

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython
    TYPE_CHECKING = False  # type: ignore[misc]
if TYPE_CHECKING:
    from collections.abc import Callable

VERSION = 1
DOMAIN = b"pw1\n"
MAX_WIRE_BYTES = 16384
SIG_HEX_LEN = 64
MAX_SEQ = 2**48
MAX_KIND_LEN = 32
_HEX = "0123456789abcdef"


class EnvelopeError(ValueError):
    """A message that is not a valid envelope; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


def _to_bytes(value: "str | bytes") -> bytes:
    return value.encode() if isinstance(value, str) else value


def _hex(data: bytes) -> str:
    return hexlify(data).decode()


def signature(secret: bytes, topic: "str | bytes", body_bytes: bytes) -> str:
    """The lowercase hex HMAC-SHA256 of one message under ``secret`` (bytes)."""
    return _hex(hmac_sha256(secret, DOMAIN, _to_bytes(topic), b"\n", body_bytes))


def seal(secret: bytes, key_id: str, topic: str, fields: dict) -> bytes:
    """Serialise ``fields`` (a dict) and sign it for ``topic``: returns the wire bytes."""
    body_bytes = json.dumps(fields).encode()
    sig = hmac_sha256(secret, DOMAIN, _to_bytes(topic), b"\n", body_bytes)
    # one allocation for the wire bytes: fewer fragments on a 96 KiB heap
    out = bytearray(len(body_bytes) + len(key_id) + 2 + 2 * len(sig))
    n = len(body_bytes)
    out[:n] = body_bytes
    out[n] = 10  # "\n"
    out[n + 1 : n + 1 + len(key_id)] = key_id.encode()
    n += 1 + len(key_id)
    out[n] = 58  # ":"
    out[n + 1 :] = hexlify(sig)
    return bytes(out)


def make(dev: str, boot: int, seq: int, ts: int, kind: str, body: dict) -> dict:
    """The JSON fields of an envelope, in the order the protocol document lists them."""
    return {"v": VERSION, "dev": dev, "boot": boot, "seq": seq, "ts": ts, "kind": kind,
            "body": body}


def split(wire: bytes) -> "tuple[bytes, str, str]":
    """Split wire bytes into (json_bytes, key_id, signature_hex) without trusting them."""
    if len(wire) > MAX_WIRE_BYTES:
        raise EnvelopeError("too_large", "%d bytes, limit %d" % (len(wire), MAX_WIRE_BYTES))
    cut = wire.rfind(b"\n")
    if cut < 0:
        raise EnvelopeError("no_signature", "no signature line after the JSON")
    trailer = wire[cut + 1 :]
    colon = trailer.rfind(b":")
    if colon < 1:
        raise EnvelopeError("no_signature", "signature line is not '<key id>:<hex>'")
    try:
        key_id = trailer[:colon].decode()
        sig = trailer[colon + 1 :].decode()
    except UnicodeError:
        raise EnvelopeError("no_signature", "signature line is not ASCII")
    if len(sig) != SIG_HEX_LEN or sig.strip(_HEX):  # only hex digits (no generator: heap)
        raise EnvelopeError("no_signature", "signature must be 64 lowercase hex digits")
    return wire[:cut], key_id, sig


def verify(secret: bytes, topic: str, body_bytes: bytes, sig: str) -> bool:
    """True when ``sig`` is the signature of ``body_bytes`` on ``topic`` under ``secret``."""
    return equal(signature(secret, topic, body_bytes).encode(), sig.encode())


def open_message(secret_for: "Callable[[str], bytes | None]", topic: str,
                 wire: bytes, shape: bool = True) -> "tuple[dict, str]":
    """Split, verify and parse one message in the safe order; return (fields, key_id).

    ``secret_for(key_id)`` returns the secret bytes for that key id, or None when the
    key id is unknown for this sender. ``shape=False`` skips the field checks of
    ``protocols.envelope_shape`` (the firmware, reading the controller's signed acks,
    does not carry that module: it checks the one field it uses).
    """
    body_bytes, key_id, sig = split(wire)
    secret = secret_for(key_id)
    if secret is None:
        raise EnvelopeError("unknown_key", "key id %r is not known for this device" % key_id)
    if not verify(secret, topic, body_bytes, sig):
        raise EnvelopeError("bad_signature", "HMAC does not match the topic and payload")
    if not shape:
        try:
            return json.loads(body_bytes), key_id
        except ValueError:
            raise EnvelopeError("bad_json", "payload is not JSON")
    from protocols.envelope_shape import parse

    return parse(body_bytes), key_id
