"""Sealing a big custody event in a buffer made at boot: the same wire bytes as
``Signer.seal`` (edge/signer.py), built in place.

A 40-car train is 2.5 KB on the wire. Sealed the allocating way it needs the JSON, its
``encode``, the wire's ``bytearray`` and its ``bytes`` copy: three or four pieces of that
size at once, which a 96 KiB heap fragmented by a TLS session did not have (edge/FAILURES.md,
Rail reader). Here the JSON is written into the buffer piece by piece (``json.dump`` to a
stream, or the body's own ``write_json``), both signatures are computed over a view of it
and their lines written after it: nothing bigger than a piece of the JSON is allocated.

Loaded at boot by edge/main.py for the agents with an event buffer (the rail reader:
``EVENT_BYTES`` there); the others, whose events are 0.5-1 KB, are sealed as parts
(``Signer.seal(parts=True)``) and do not carry this code.
"""

import io
import json
from binascii import hexlify

from edge.signer import p256
from protocols.hmac_sha256 import hmac_sha256


class _Into(io.IOBase):
    """A write-only stream into a bytearray: OverflowError when it is full."""

    def __init__(self, buf):
        self.buf = buf
        self.n = 0

    def write(self, b):
        if isinstance(b, str):  # CPython's json writes str; MicroPython's, bytes
            b = b.encode()
        n = self.n
        k = len(b)
        if n + k > len(self.buf):
            raise OverflowError
        self.buf[n:n + k] = b
        self.n = n + k
        return k


def seal_into(signer, buf, topic, seq, ts, kind, body, devsig=True):
    """``signer.seal(topic, seq, ts, kind, body)`` built in ``buf``: a memoryview of it,
    valid until the next seal into it. A body with ``write_json(w)`` writes its own JSON
    (edge/drivers/rail.py ``Train``). An event that does not fit: ValueError("too big",
    bytes of the buffer) for such a body, else it is sealed the allocating way."""
    if isinstance(topic, str):
        topic = topic.encode()
    w = _Into(buf)
    own = hasattr(body, "write_json")
    try:
        if own:
            w.write(json.dumps({"v": 1, "dev": signer.device_id, "boot": signer.boot,
                                "seq": seq, "ts": ts, "kind": kind})[:-1])
            w.write(', "body": ')
            body.write_json(w)
            w.write("}")
        else:  # in the order the protocol document lists them
            json.dump({"v": 1, "dev": signer.device_id, "boot": signer.boot, "seq": seq,
                       "ts": ts, "kind": kind, "body": body}, w)
        return _lines(signer, topic, buf, w.n, devsig)
    except OverflowError:
        if own:
            raise ValueError("too big", len(buf))
    return type(signer).seal(signer, topic, seq, ts, kind, body, None, False, devsig)


def install(signer, buf):
    """Make ``signer`` seal its custody events (``evt`` topics) in ``buf``; the rest (birth,
    command answers: sent while the driver may store the next event) the allocating way.
    An instance attribute, so that the agent core carries no code for it."""
    plain = signer.seal  # the class's method, bound: install() replaces it on the instance

    def seal(topic, seq, ts, kind, body, fields=None, parts=False, devsig=True):
        t = topic.encode() if isinstance(topic, str) else topic
        if fields is None and t[-4:] == b"/evt":
            return seal_into(signer, buf, t, seq, ts, kind, body, devsig)
        return plain(topic, seq, ts, kind, body, fields, parts, devsig)

    signer.seal = seal


def _lines(signer, topic, buf, n, devsig=True):
    """The wire of the JSON in ``buf[:n]`` with its signature lines added in ``buf`` (the
    device's es256 line on an ``evt`` topic, then the HMAC line): a memoryview;
    OverflowError when they do not fit."""
    mv = memoryview(buf)
    key_id = signer.key_id.encode()
    es = devsig and signer.dkey is not None and topic[-4:] == b"/evt"
    if n + (135 if es else 0) + 66 + len(key_id) > len(buf):
        raise OverflowError
    m = n
    if es:
        buf[m:m + 7] = b"\nes256:"
        buf[m + 7:m + 135] = hexlify(p256("sign", signer.dkey, b"pw1-dev\n", topic, b"\n",
                                          mv[:n]))
        m += 135
    sig = hexlify(hmac_sha256(signer._secret, b"pw1\n", topic, b"\n", mv[:m]))
    buf[m] = 10  # "\n"
    buf[m + 1:m + 1 + len(key_id)] = key_id
    m += 1 + len(key_id)
    buf[m] = 58  # ":"
    buf[m + 1:m + 65] = sig
    return mv[:m + 65]
