"""ECDSA over P-256 with SHA-256: the device's own signature on its custody events.

Only what a device needs, small enough for its heap (edge/FAILURES.md, Heap): the public
key of a scalar, and a signature with the nonce of RFC 6979 (deterministic: HMAC-SHA256)
and ``s`` normalised to the lower half (``s <= n/2``), so a message has exactly one
signature and a resend is byte-identical. Verifying is the controller's (``cryptography``).
The contract and the vectors both sides check: PROTOCOL.md ("Device signature"),
``protocols/vectors/devsig.json``.

Not constant-time, and it cannot be made so in MicroPython: big integers are variable-length
(C mpz) and every operation's time depends on its operands, so the scalar's bits leak
through timing to whoever can time signatures closely. The unix port's key file is a
software key; on hardware the secure element behind the HAL signs inside the chip.

Scalar multiplication is double-and-add in Jacobian coordinates (a = -3), with G added in
affine form. No special case is needed for 1 <= k < n: a prefix j of k's bits is below
n/2, so a doubling is never of the point at infinity (nor of a point of order 2: P-256
has none) and an addition of G to 2j*G never meets G or -G (2j is even and 2j + 1 <= k < n).
"""

import hashlib

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def scalar(raw: bytes) -> "int | None":
    """The private key ``d`` that 32 random bytes make, or None when they are 0 or >= n
    (draw again: the contract rejects, it does not reduce)."""
    d = int.from_bytes(raw, "big") if len(raw) == 32 else 0
    return d if 0 < d < N else None


def public(k: int) -> str:
    """k*G as a SEC1 uncompressed point, 130 lowercase hex digits (04 || X || Y), for
    1 <= k < n: the public key of the private key ``k`` (and ``sign``'s r: one function,
    not two, on a device's heap)."""
    x, y, z = GX, GY, 1
    top = 255
    while not k >> top:  # MicroPython's int has no bit_length()
        top -= 1
    for i in range(top - 1, -1, -1):
        # double (dbl-2001-b: a = -3)
        d = z * z % P
        g = y * y % P
        b = x * g % P
        a = 3 * (x - d) * (x + d) % P
        x3 = (a * a - 8 * b) % P
        z = ((y + z) * (y + z) - g - d) % P
        y = (a * (4 * b - x3) - 8 * g * g) % P
        x = x3
        if (k >> i) & 1:
            # add G (affine): never the doubling case, see the module's docstring
            d = z * z % P
            h = (GX * d - x) % P
            r = (GY * d * z - y) % P
            hh = h * h % P
            hhh = h * hh % P
            x3 = (r * r - hhh - 2 * x * hh) % P
            y = (r * (x * hh - x3) - y * hhh) % P
            x = x3
            z = z * h % P
    z = pow(z, P - 2, P)
    d = z * z % P
    return "04%064x%064x" % (x * d % P, y * d * z % P)


def _hmac(key: bytes, *parts: bytes) -> bytes:
    # HMAC-SHA256 written out, not protocols.hmac_sha256's: that one caches the pads of
    # every key it sees, and each K of RFC 6979 is a new key
    ipad = bytearray(64)
    opad = bytearray(64)
    for i in range(64):
        b = key[i] if i < 32 else 0
        ipad[i] = b ^ 0x36
        opad[i] = b ^ 0x5C
    h = hashlib.sha256(ipad)
    for part in parts:
        h.update(part)
    outer = hashlib.sha256(opad)
    outer.update(h.digest())
    return outer.digest()


def sign(d: int, *parts: bytes) -> bytes:
    """The signature of the concatenation of ``parts`` (bytes) under ``d``: 64 bytes,
    r || s big-endian, RFC 6979 nonce, low s."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    e = int.from_bytes(h.digest(), "big")  # qlen = hlen = 256: no truncation
    # RFC 6979 section 3.2, steps d-h; bits2octets(h1) = (e mod n) as 32 bytes
    seed = d.to_bytes(32, "big") + (e % N).to_bytes(32, "big")
    v = b"\x01" * 32
    k = _hmac(bytes(32), v, b"\x00", seed)
    v = _hmac(k, v)
    k = _hmac(k, v, b"\x01", seed)
    v = _hmac(k, v)
    while True:
        v = _hmac(k, v)
        nonce = int.from_bytes(v, "big")
        if 0 < nonce < N:
            r = int(public(nonce)[2:66], 16) % N
            s = pow(nonce, N - 2, N) * (e + r * d) % N
            if r and s:
                if s > N // 2:
                    s = N - s
                return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        k = _hmac(k, v, b"\x00")
        v = _hmac(k, v)
