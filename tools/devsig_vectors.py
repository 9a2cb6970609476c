"""Generate protocols/vectors/devsig.json: vectors for the device signature (ECDSA P-256).

Every value is made by ``protocols.p256`` (the firmware's signer) and checked here against
``cryptography`` (OpenSSL) before it is written: the public key of each scalar, each
signature as OpenSSL's RFC 6979 deterministic ECDSA makes it (then brought to low s) and
its verification; RFC 6979's own P-256/SHA-256 cases (appendix A.2.5) are typed in from
the RFC and must come out the same. tests/protocols/test_p256.py checks the file under
CPython and MicroPython; tests/tools/test_devsig.py checks that it is what this makes.

The keys are TEST FIXTURES, published on purpose; never deploy them.
Run ``python -m tools.devsig_vectors`` after a deliberate change and commit the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from protocols import p256

OUT = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "devsig.json"
TOPIC = "pw/v1/dalian-north/wb-gate1/evt"
HMAC_KEY = bytes(range(32))  # TEST FIXTURE ONLY (the one of envelope.json)
HMAC_KEY_ID = "k1"

# RFC 6979 appendix A.2.5: the P-256 key and, with SHA-256, the nonce and signature of the
# messages "sample" and "test" (s as the RFC gives it: not normalised to low s)
RFC_X = "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"
RFC_UX = "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
RFC_UY = "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299"
RFC_CASES = (
    ("sample", "a6e3c57dd01abe90086538398355dd4c3b17aa873382b0f24d6129493d8aad60",
     "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716",
     "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"),
    ("test", "d16b6ae827f17175e040871a1c7ec3500192c4c92677336ec2537acaee0008e0",
     "f1abb023518351cd71d881567b1ea663ed3efcf6c5132b354f28d3b0b7d38367",
     "019f4113742a2b14bd25926b49c649155f267e60d3814b4c0cc84250e46f0083"),
)


class VectorError(AssertionError):
    """protocols.p256 and cryptography disagree: the vectors are not written."""


def openssl_public(d: int) -> str:
    """The SEC1 uncompressed public key of ``d`` as OpenSSL computes it (hex)."""
    n = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return f"04{n.x:064x}{n.y:064x}"


def openssl_sign(d: int, message: bytes) -> bytes:
    """OpenSSL's RFC 6979 signature of ``message`` under ``d``, low s, as r || s."""
    key = ec.derive_private_key(d, ec.SECP256R1())
    der = key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    s = min(s, p256.N - s)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def openssl_verify(pub_hex: str, message: bytes, sig: bytes) -> bool:
    """Whether ``sig`` (r || s) verifies for ``message`` under the SEC1 key ``pub_hex``."""
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(pub_hex))
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                     int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA256()))
    except Exception:  # cryptography's InvalidSignature, or a point it refuses
        return False
    return True


def check(d: int, message: bytes) -> bytes:
    """``p256.sign(d, message)``, once OpenSSL agrees on the key and the signature."""
    pub = p256.public(d)
    if pub != openssl_public(d):
        raise VectorError(f"public key of d={d:x}: p256 {pub}, OpenSSL {openssl_public(d)}")
    sig = p256.sign(d, message)
    if sig != openssl_sign(d, message) or not openssl_verify(pub, message, sig):
        raise VectorError(f"signature of {message!r} under d={d:x} differs from OpenSSL's")
    return sig


def signed_bytes(topic: str, json_bytes: bytes) -> bytes:
    """What a device signs for one custody event (PROTOCOL.md, Device signature)."""
    return b"pw1-dev\n" + topic.encode() + b"\n" + json_bytes


def _wire(d: int, topic: str, json_bytes: bytes) -> tuple[str, str]:
    """(es256 line, wire) of a device-signed event under the fixture HMAC key."""
    es = "es256:" + check(d, signed_bytes(topic, json_bytes)).hex()
    head = json_bytes + b"\n" + es.encode()
    mac = hmac.new(HMAC_KEY, b"pw1\n" + topic.encode() + b"\n" + head, hashlib.sha256)
    return es, (head + b"\n" + HMAC_KEY_ID.encode() + b":" + mac.hexdigest().encode()).decode()


def build() -> dict[str, Any]:
    """All vectors as one JSON-able document."""
    x = int(RFC_X, 16)
    if p256.public(x) != "04" + RFC_UX + RFC_UY:
        raise VectorError("RFC 6979 A.2.5 public key not reproduced")
    rfc = []
    for msg, k, r, s in RFC_CASES:
        if f"{int(p256.public(int(k, 16))[2:66], 16) % p256.N:064x}" != r:
            raise VectorError(f"RFC 6979 {msg!r}: r is not x(k*G)")
        low = min(int(s, 16), p256.N - int(s, 16))
        sig = check(x, msg.encode())
        if sig.hex() != r + f"{low:064x}":
            raise VectorError(f"RFC 6979 {msg!r}: p256 gives {sig.hex()}")
        rfc.append({"message": msg, "k": k, "r": r, "s": s, "s_low": f"{low:064x}",
                    "sig": sig.hex()})
    # scalars from 32 "random" bytes: the edges of [1, n-1] and a few hashes
    raws = [(1).to_bytes(32, "big"), (p256.N - 1).to_bytes(32, "big")]
    raws += [hashlib.sha256(b"portwatch devsig fixture %d" % i).digest() for i in range(6)]
    keys = []
    for raw in raws:
        d = p256.scalar(raw)
        if d is None:
            raise VectorError(f"fixture scalar {raw.hex()} refused")
        check(d, raw)  # the key and a signature with it, against OpenSSL
        keys.append({"raw": raw.hex(), "pub": p256.public(d)})
    rejected = [bytes(32).hex(), p256.N.to_bytes(32, "big").hex(), "ff" * 32, "01" * 31]
    for raw_hex in rejected:
        if p256.scalar(bytes.fromhex(raw_hex)) is not None:
            raise VectorError(f"scalar {raw_hex} must be refused")
    bodies = [
        '{"v": 1, "dev": "wb-gate1", "boot": 3, "seq": 42, "ts": 1764072000123, '
        '"kind": "weighing", "body": {"plate": "辽B12345", "gross_kg": 45230, '
        '"tare_kg": 15100, "net_kg": 30130}}',
        '{"v": 1, "dev": "wb-gate1", "boot": 3, "seq": 43, "ts": 1764072001000, '
        '"kind": "alarm", "body": {"alarm": "indicator_frozen", "state": "raised"}}',
        '{"v": 1, "dev": "wb-gate1", "boot": 4, "seq": 44, "ts": 1764072002000, '
        '"kind": "gap", "body": {"reason": "unreadable"}}',
        '{"dev": "wb-gate1", "v": 1, "seq": 45, "boot": 4, "kind": "refused", "ts": '
        '1764072003000, "body": {"count": 2, "kinds": {"weighing": 2}, "since_ts": 1, '
        '"until_ts": 2, "reason": "outbox_full"}}',
    ]
    signatures = []
    for i, body in enumerate(bodies):
        d = p256.scalar(bytes.fromhex(keys[2 + i % 3]["raw"]))
        assert d is not None
        message = signed_bytes(TOPIC, body.encode())
        signatures.append({"key": 2 + i % 3, "topic": TOPIC, "json": body,
                           "message_hex": message.hex(), "sig": check(d, message).hex()})
    d = p256.scalar(bytes.fromhex(keys[2]["raw"]))
    assert d is not None
    es, wire = _wire(d, TOPIC, bodies[0].encode())
    return {
        "comment": "portwatch device signature (ECDSA P-256, SHA-256, RFC 6979 nonce, low s)"
                   " test vectors; every key here is a published TEST FIXTURE",
        "signed_bytes": "b'pw1-dev\\n' + topic + b'\\n' + JSON bytes exactly as in the "
                        "envelope",
        "rfc6979_a25": {"x": RFC_X, "pub": "04" + RFC_UX + RFC_UY, "cases": rfc},
        "keys": keys,
        "rejected_raw": rejected,
        "signatures": signatures,
        "wire": {"hmac_key_hex": HMAC_KEY.hex(), "key_id": HMAC_KEY_ID, "device_key": 2,
                 "pub": keys[2]["pub"], "topic": TOPIC, "json": bodies[0], "es256": es,
                 "wire": wire},
    }


def render() -> str:
    """The file's exact text."""
    return json.dumps(build(), indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the vector file (``--check``: exit 1 when the committed one differs)."""
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if "--check" in args:
        same = OUT.read_text(encoding="utf-8") == text
        print(f"{OUT} is " + ("up to date" if same else
                              "OUT OF DATE: run python -m tools.devsig_vectors"))
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
