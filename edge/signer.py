"""This device's identity and key: it seals what the device sends and checks what it is sent.

The agent seals custody events before they enter the outbox; the uplink seals birth,
death, health and gap notices, re-seals events stored under an older key, and opens
the controller's acks with ``open``. A key rotation is a new ``key_id`` and secret in the
config, read at boot: one Signer, so every message changes key at once.

The device's half of ``protocols.envelope`` (PROTOCOL.md, "Envelope"), byte for byte the
same wire form and the same checks and reasons when opening, in one class: the agent does
not import that module, whose controller-side helpers and typing shim cost about 2 KB of
its heap (edge/FAILURES.md, Heap; tests/edge/test_signer.py checks both agree).
"""

import json
from binascii import hexlify

from protocols.hmac_sha256 import equal, hmac_sha256


class EnvelopeError(ValueError):
    """A downlink that is not a valid envelope: "<reason>: <detail>", as the controller's
    ``protocols.envelope.EnvelopeError`` says it."""


class Signer:
    def __init__(self, device_id, boot, key_id, secret):
        self.device_id = device_id
        self.boot = boot
        self.key_id = key_id
        self._secret = secret

    def seal(self, topic, seq, ts, kind, body, fields=None):
        """One message from this device, in this boot, signed for ``topic``: wire bytes
        (``protocols.envelope.seal``). ``fields``: the JSON fields as they are, instead."""
        if fields is None:  # in the order the protocol document lists them
            fields = {"v": 1, "dev": self.device_id, "boot": self.boot, "seq": seq, "ts": ts,
                      "kind": kind, "body": body}
        body_bytes = json.dumps(fields).encode()
        key_id = self.key_id.encode()
        sig = hexlify(self.sign(topic, body_bytes))
        # one allocation for the wire bytes: fewer fragments on a 96 KiB heap
        out = bytearray(len(body_bytes) + len(key_id) + 2 + len(sig))
        n = len(body_bytes)
        out[:n] = body_bytes
        out[n] = 10  # "\n"
        out[n + 1:n + 1 + len(key_id)] = key_id
        n += 1 + len(key_id)
        out[n] = 58  # ":"
        out[n + 1:] = sig
        return bytes(out)

    def sign(self, topic, body_bytes):
        """The HMAC-SHA256 (raw bytes) of ``body_bytes`` on ``topic`` under this key."""
        if isinstance(topic, str):
            topic = topic.encode()
        return hmac_sha256(self._secret, b"pw1\n", topic, b"\n", body_bytes)

    def reseal(self, topic, wire):
        """``wire`` signed with the current key; None when it already is. The JSON fields
        (seq, boot, ts, body) stay as they were: only the signature line changes."""
        cut = wire.rfind(b"\n")
        kid = self.key_id.encode() + b":"
        if wire[cut + 1:cut + 1 + len(kid)] == kid:
            return None
        return self.seal(topic, 0, 0, None, None, json.loads(wire[:cut]))

    def open(self, topic, wire):
        """The JSON fields of a downlink signed with this key for ``topic``; EnvelopeError
        otherwise (``protocols.envelope.open_message(..., shape=False)``: split, verify,
        then parse)."""
        if len(wire) > 16384:
            raise EnvelopeError("too_large: %d bytes, limit 16384" % len(wire))
        cut = wire.rfind(b"\n")
        if cut < 0:
            raise EnvelopeError("no_signature: no signature line after the JSON")
        trailer = wire[cut + 1:]
        colon = trailer.rfind(b":")
        if colon < 1:
            raise EnvelopeError("no_signature: signature line is not '<key id>:<hex>'")
        try:
            key_id = trailer[:colon].decode()
            sig = trailer[colon + 1:].decode()
        except UnicodeError:
            raise EnvelopeError("no_signature: signature line is not ASCII")
        if len(sig) != 64 or sig.strip("0123456789abcdef"):
            raise EnvelopeError("no_signature: signature must be 64 lowercase hex digits")
        if key_id != self.key_id:
            raise EnvelopeError("unknown_key: key id %r is not known for this device" % key_id)
        if not equal(hexlify(self.sign(topic, wire[:cut])), sig.encode()):
            raise EnvelopeError("bad_signature: HMAC does not match the topic and payload")
        try:
            return json.loads(wire[:cut])
        except ValueError:
            raise EnvelopeError("bad_json: payload is not JSON")
