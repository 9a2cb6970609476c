"""HMAC-SHA256 (RFC 2104) built on ``hashlib.sha256``.

Hand-written because MicroPython has no ``hmac`` module; on CPython the result is
identical to ``hmac.new(key, msg, hashlib.sha256)``, which the tests check along
with the RFC 4231 vectors.
"""

import hashlib

_BLOCK = 64


def _xor_pad(key: bytes, byte: int) -> bytes:
    return bytes((b ^ byte) for b in key)


def _norm_key(key: bytes) -> bytes:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    return key + b"\x00" * (_BLOCK - len(key))


# key -> (inner pad, outer pad), computed once per key: a device holds one or two keys,
# the controller one per device (bounded: cleared past _MAX_KEYS)
_pads = {}
_MAX_KEYS = 4096


def _pads_for(key: bytes) -> "tuple[bytes, bytes]":
    pads = _pads.get(key)
    if pads is None:
        if len(_pads) >= _MAX_KEYS:
            _pads.clear()
        k = _norm_key(key)
        pads = _pads[key] = (_xor_pad(k, 0x36), _xor_pad(k, 0x5C))
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
