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


def hmac_sha256(key: bytes, *parts: bytes) -> bytes:
    """Return the 32-byte HMAC-SHA256 of the concatenation of ``parts`` under ``key``."""
    k = _norm_key(key)
    inner = hashlib.sha256(_xor_pad(k, 0x36))
    for part in parts:
        inner.update(part)
    outer = hashlib.sha256(_xor_pad(k, 0x5C))
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
