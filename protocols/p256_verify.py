"""ECDSA P-256 / SHA-256 verification: the firmware bundle's signature (edge/ota.py).

Loaded only while an update is checked, and freed after it: a running agent never carries
it (protocols/p256.py signs; this checks). Curve constants are repeated here, not imported
from protocols.p256, so that verifying does not load the signing code too.

``verify(pub_hex, sig, *parts)`` (``verify_digest``: the SHA-256 made already): True when
``sig`` (64 bytes r || s, or 128 hex digits) is a valid signature of the concatenation of
``parts`` under the SEC1 uncompressed public key ``pub_hex`` (130 hex digits). Any s is
accepted (high or low): the bundle's signer makes low s, but verification is the standard
one. u1*G + u2*Q is computed with Shamir's trick (one pass over the bits, adding G, Q or
G+Q), in Jacobian coordinates (a = -3) with affine additions; the point at infinity is
z == 0. Not constant-time: nothing here is secret.
"""

import hashlib

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def _dbl(x, y, z):
    if not z:
        return x, y, 0
    d = z * z % P
    g = y * y % P
    b = x * g % P
    a = 3 * (x - d) * (x + d) % P
    x3 = (a * a - 8 * b) % P
    z = ((y + z) * (y + z) - g - d) % P
    return x3, (a * (4 * b - x3) - 8 * g * g) % P, z


def _add(x, y, z, ax, ay):
    """(x, y, z) + the affine point (ax, ay)."""
    if not z:
        return ax, ay, 1
    d = z * z % P
    h = (ax * d - x) % P
    r = (ay * d * z - y) % P
    if not h:
        return _dbl(x, y, z) if not r else (1, 1, 0)
    hh = h * h % P
    hhh = h * hh % P
    x3 = (r * r - hhh - 2 * x * hh) % P
    return x3, (r * (x * hh - x3) - y * hhh) % P, z * h % P


def _affine(x, y, z):
    z = pow(z, P - 2, P)
    d = z * z % P
    return x * d % P, y * d * z % P


def verify(pub_hex, sig, *parts):
    """True when ``sig`` signs the concatenation of ``parts`` under ``pub_hex``."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return verify_digest(pub_hex, sig, h.digest())


def verify_digest(pub_hex, sig, digest):
    """``verify`` for a SHA-256 ``digest`` hashed elsewhere (a manifest streamed to flash)."""
    try:
        if type(sig) is str:
            sig = bytes(int(sig[i:i + 2], 16) for i in range(0, len(sig), 2))
        if len(sig) != 64 or len(pub_hex) != 130 or pub_hex[:2] != "04":
            return False
        qx = int(pub_hex[2:66], 16)
        qy = int(pub_hex[66:], 16)
    except ValueError:
        return False
    if not (qx < P and qy < P and (qy * qy - qx * qx * qx + 3 * qx - B) % P == 0):
        return False  # not a point of the curve: a broken key, refused
    r = int.from_bytes(sig[:32], "big")
    s = int.from_bytes(sig[32:], "big")
    if not (0 < r < N and 0 < s < N):
        return False
    e = int.from_bytes(digest, "big")
    w = pow(s, N - 2, N)
    u1 = e * w % N
    u2 = r * w % N
    sx, sy, sz = _add(GX, GY, 1, qx, qy)  # G + Q
    if sz:
        sx, sy = _affine(sx, sy, sz)
    x, y, z = 1, 1, 0
    i = 255
    while i >= 0:
        x, y, z = _dbl(x, y, z)
        b = ((u1 >> i) & 1) | (((u2 >> i) & 1) << 1)
        if b == 1:
            x, y, z = _add(x, y, z, GX, GY)
        elif b == 2:
            x, y, z = _add(x, y, z, qx, qy)
        elif b == 3:
            x, y, z = _add(x, y, z, sx, sy) if sz else _add(*_add(x, y, z, GX, GY), qx, qy)
        i -= 1
    if not z:
        return False
    return _affine(x, y, z)[0] % N == r
