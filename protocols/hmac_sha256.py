"""HMAC-SHA256 (RFC 2104) built on ``hashlib.sha256``.

Hand-written because MicroPython has no ``hmac`` module; on CPython the result is
identical to ``hmac.new(key, msg, hashlib.sha256)``, which the tests check along
with the RFC 4231 vectors.
"""

import hashlib

_BLOCK = 64


# key -> (inner pad, outer pad), computed once per key: a device holds one or two keys,
# the controller one per device (bounded: cleared past _MAX_KEYS)
_pads = {}
_MAX_KEYS = 4096


def _pads_for(key: bytes) -> "tuple[bytes, bytes]":
    pads = _pads.get(key)
    if pads is None:
        if len(_pads) >= _MAX_KEYS:
            _pads.clear()
        k = hashlib.sha256(key).digest() if len(key) > _BLOCK else key
        ipad = bytearray(_BLOCK)  # the key zero-padded to a block, xored (loops: on the
        opad = bytearray(_BLOCK)  # device a comprehension or helper costs heap)
        for i in range(_BLOCK):
            b = k[i] if i < len(k) else 0
            ipad[i] = b ^ 0x36
            opad[i] = b ^ 0x5C
        pads = _pads[key] = (bytes(ipad), bytes(opad))
    return pads


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """Return the 32-byte HMAC-SHA256 of the concatenation of ``parts`` under ``key``."""
    ipad, opad = _pads_for(key)
    inner = hashlib.sha256(ipad)
    for part in parts:
        inner.update(part)
    outer = hashlib.sha256(opad)
    outer.update(inner.digest())
    return outer.digest()


def equal(a: bytes, b: bytes) -> bool:
    """Compare two byte strings in time independent of where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
