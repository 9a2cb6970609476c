"""This device's identity and key: it seals what the device sends and checks what it is sent.

The agent seals custody events before they enter the outbox; the uplink seals birth,
death, health and gap notices, re-seals events stored under an older key, and opens
the controller's acks with ``open``. A key rotation is a new ``key_id`` and secret in the
config, read at boot: one Signer, so every message changes key at once.

The device's half of ``protocols.envelope`` (PROTOCOL.md, "Envelope"), byte for byte the
same wire form and the same checks and reasons when opening, in one class: the agent does
not import that module, whose controller-side helpers and typing shim cost about 2 KB of
its heap (edge/FAILURES.md, Heap; tests/edge/test_signer.py checks both agree).

With a device key (``dkey``: the P-256 scalar the agent keeps in ``<data_dir>/device_key``),
every message sealed for an ``evt`` topic (custody events: weighing, alarm, gap, refused)
also carries the device's own signature, a line between the JSON and the HMAC::

    <JSON>\nes256:<128 hex: r || s>\n<key id>:<64 hex HMAC>

ECDSA P-256 over ``b"pw1-dev\n" + topic + b"\n" + JSON`` (protocols/p256.py), and the HMAC
over everything before the last newline, the es256 line included (PROTOCOL.md, Device
signature). The device signature does not depend on the HMAC key: a reseal keeps it.
"""

import gc
import json
import sys
from binascii import hexlify

from protocols.hmac_sha256 import equal, hmac_sha256


def p256(name, *args):
    """``protocols.p256.<name>(*args)``, the module loaded for this call and freed after it,
    unless it was loaded at boot (edge/main.py RESIDENT_P256).

    Its code costs 2-2.5 KB of heap that a weighbridge's agent does not have to spare at all
    times (edge/FAILURES.md, Heap): loaded, it runs, and it leaves the heap again with the
    ~1.2 MB of short-lived big integers a signature makes, swept before anything long-lived
    is placed among them. Loaded into the rail agent's heap, fragmented by a TLS session, its
    code took the last holes its big integers needed (a 98-byte integer refused with 9 KB
    free): that agent loads it at boot, in one piece, and keeps it.
    """
    resident = "protocols.p256" in sys.modules
    import protocols.p256 as m

    try:
        return getattr(m, name)(*args)
    finally:
        m = None
        if not resident:
            sys.modules.pop("protocols.p256", None)
            if hasattr(sys.modules["protocols"], "p256"):
                delattr(sys.modules["protocols"], "p256")
        gc.collect()


class EnvelopeError(ValueError):
    """A downlink that is not a valid envelope: "<reason>: <detail>", as the controller's
    ``protocols.envelope.EnvelopeError`` says it."""


class Signer:
    def __init__(self, device_id, boot, key_id, secret, dkey=None):
        self.device_id = device_id
        self.boot = boot
        self.key_id = key_id
        self._secret = secret
        self.dkey = dkey  # the device's P-256 private scalar; None: HMAC only

    def seal(self, topic, seq, ts, kind, body, fields=None, parts=False, devsig=True):
        """One message from this device, in this boot, signed for ``topic``: wire bytes
        (``protocols.envelope.seal``). ``fields``: the JSON fields as they are, instead.
        ``parts``: the wire as a tuple of buffers (the JSON, the es256 line, the HMAC line)
        for ``Outbox.append`` or ``MQTTClient.publish`` to write one after another: no
        joined copy, so the JSON is the only piece its size while the device signs (a big
        event is sealed in a buffer made at boot instead: edge/seal_into.py). ``devsig``
        False: no es256 line now (the agent's fallback when the heap has no room for a
        signature: the uplink adds it before the record leaves, as ``reseal`` does)."""
        if fields is None:  # in the order the protocol document lists them
            fields = {"v": 1, "dev": self.device_id, "boot": self.boot, "seq": seq, "ts": ts,
                      "kind": kind, "body": body}
        if isinstance(topic, str):
            topic = topic.encode()
        data = json.dumps(fields)
        try:
            data = memoryview(data)  # MicroPython: the str's UTF-8 bytes, not a copy
        except TypeError:
            data = data.encode()  # CPython
        es = b""
        if devsig and self.dkey is not None and topic[-4:] == b"/evt":
            es = b"\nes256:" + hexlify(p256("sign", self.dkey, b"pw1-dev\n", topic, b"\n",
                                             data))
        line = b"\n" + self.key_id.encode() + b":" + hexlify(
            hmac_sha256(self._secret, b"pw1\n", topic, b"\n", data, es))
        if parts:
            return (data, es, line)
        return bytes(data) + es + line

    def sign(self, topic, *body_parts):
        """The HMAC-SHA256 (raw bytes) of the bytes ``body_parts`` make on ``topic`` under
        this key."""
        if isinstance(topic, str):
            topic = topic.encode()
        return hmac_sha256(self._secret, b"pw1\n", topic, b"\n", *body_parts)

    def reseal(self, topic, wire):
        """``wire`` signed with the current key; None when it already is. Every byte before
        the HMAC line stays as it was (the JSON, and the device's es256 line, which does not
        depend on the HMAC key): only the HMAC line changes; an ``evt`` record without an
        es256 line gets one when this device has its key."""
        if isinstance(topic, str):
            topic = topic.encode()
        cut = wire.rfind(b"\n")
        kid = self.key_id.encode() + b":"
        head = wire[:cut]
        if self.dkey is not None and topic[-4:] == b"/evt" and head[-135:-128] != b"\nes256:":
            # stored before this device had its key (older firmware): the JSON is this
            # device's own, so it signs it now, as it would have then
            head += b"\nes256:" + hexlify(p256("sign", self.dkey, b"pw1-dev\n", topic, b"\n",
                                                head))
        elif wire[cut + 1:cut + 1 + len(kid)] == kid:
            return None
        return head + b"\n" + kid + hexlify(self.sign(topic, head))

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
