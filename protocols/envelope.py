"""The signed envelope every portwatch MQTT message travels in (PROTOCOL.md, "Envelope").

Wire form (UTF-8)::

    <JSON object>\\n<key id>:<64 lowercase hex digits of HMAC-SHA256>

and, for a custody event (``evt``) from an agent that holds a device key::

    <JSON object>\\nes256:<128 lowercase hex digits: r || s>\\n<key id>:<64 hex HMAC>

The HMAC covers ``b"pw1\\n" + topic + b"\\n" +`` every byte before the LAST newline (the
JSON, and the es256 line when there is one); the JSON is everything before the FIRST
newline (compact JSON never holds a raw newline). The es256 line is the device's own ECDSA
P-256 signature over ``b"pw1-dev\\n" + topic + b"\\n" + <JSON bytes>``: the HMAC
authenticates the transport, the device signature proves which device made the event
(checked on the controller, ``controller/ledger/device_keys.py``). So the
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
DEVICE_DOMAIN = b"pw1-dev\n"  # what the device key signs starts with this (never an HMAC input)
ES256_PREFIX = b"es256:"
ES256_HEX_LEN = 128
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


def split_signed(wire: bytes) -> "tuple[bytes, str, str]":
    """Split wire bytes into (signed_bytes, key_id, signature_hex) without trusting them.

    ``signed_bytes`` is everything before the last newline: what the HMAC covers.
    """
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


def device_line(signed: bytes) -> "tuple[bytes, str | None]":
    """Split the HMAC-covered bytes into (json_bytes, es256 hex or None).

    Between the JSON and the HMAC line only ``es256:`` and 128 lowercase hex digits may
    stand; anything else is ``bad_shape``. A message without that line costs no copy.
    """
    first = signed.find(b"\n")
    if first < 0:
        return signed, None
    line = signed[first + 1 :]
    if (len(line) != len(ES256_PREFIX) + ES256_HEX_LEN or line[:len(ES256_PREFIX)] != ES256_PREFIX):
        raise EnvelopeError("bad_shape", "the line between the JSON and the HMAC must be "
                            "'es256:' and 128 lowercase hex digits")
    try:
        sig = line[len(ES256_PREFIX):].decode()
    except UnicodeError:
        sig = "x"
    if sig.strip(_HEX):
        raise EnvelopeError("bad_shape", "the es256 signature must be 128 lowercase hex digits")
    return signed[:first], sig


def split(wire: bytes) -> "tuple[bytes, str, str]":
    """Split wire bytes into (json_bytes, key_id, signature_hex) without trusting them.

    ``json_bytes`` is the JSON alone (any es256 line left out); to check the HMAC use
    ``split_signed``, whose first part is what the HMAC covers.
    """
    signed, key_id, sig = split_signed(wire)
    return device_line(signed)[0], key_id, sig


def device_signed_bytes(topic: "str | bytes", json_bytes: bytes) -> bytes:
    """What a device key signs for one message: ``pw1-dev\\n`` + topic + ``\\n`` + JSON."""
    return DEVICE_DOMAIN + _to_bytes(topic) + b"\n" + json_bytes


def verify(secret: bytes, topic: str, body_bytes: bytes, sig: str) -> bool:
    """True when ``sig`` is the signature of ``body_bytes`` on ``topic`` under ``secret``."""
    return equal(signature(secret, topic, body_bytes).encode(), sig.encode())


def open_parts(secret_for: "Callable[[str], bytes | None]", topic: str,
               wire: bytes, shape: bool = True) -> "tuple[dict, str, str | None]":
    """Split, verify and parse one message in the safe order; return (fields, key_id, es256).

    ``es256`` is the hex of the device signature line (r || s) or None when the message
    has none; it is only split off here, checked by whoever knows the device's public key.
    ``secret_for(key_id)`` returns the secret bytes for that key id, or None when the
    key id is unknown for this sender. ``shape=False`` skips the field checks of
    ``protocols.envelope_shape`` (the firmware, reading the controller's signed acks,
    does not carry that module: it checks the one field it uses).
    """
    signed, key_id, sig = split_signed(wire)
    body_bytes, es256 = device_line(signed)
    secret = secret_for(key_id)
    if secret is None:
        raise EnvelopeError("unknown_key", "key id %r is not known for this device" % key_id)
    if not verify(secret, topic, signed, sig):
        raise EnvelopeError("bad_signature", "HMAC does not match the topic and payload")
    if not shape:
        try:
            return json.loads(body_bytes), key_id, es256
        except ValueError:
            raise EnvelopeError("bad_json", "payload is not JSON")
    from protocols.envelope_shape import parse

    return parse(body_bytes), key_id, es256


def open_message(secret_for: "Callable[[str], bytes | None]", topic: str,
                 wire: bytes, shape: bool = True) -> "tuple[dict, str]":
    """``open_parts`` without the device signature: return (fields, key_id)."""
    fields, key_id, _ = open_parts(secret_for, topic, wire, shape)
    return fields, key_id
