"""protocols.p256_verify accepts the signatures protocols.p256 makes and the vectors'
(RFC 6979 A.2.5, both s), and refuses altered ones; pytest and MicroPython. Under CPython
it is also checked against the ``cryptography`` package both ways."""

import json

from protocols import p256, p256_verify
from shared_support import read_file, repo_root


def _unhex(text):
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))


def _doc():
    return json.loads(read_file(repo_root() + "/protocols/vectors/devsig.json").decode())


def test_rfc6979_vectors_verify_high_and_low_s():
    doc = _doc()["rfc6979_a25"]
    for case in doc["cases"]:
        msg = case["message"].encode()
        assert p256_verify.verify(doc["pub"], case["r"] + case["s"], msg)
        assert p256_verify.verify(doc["pub"], _unhex(case["r"] + case["s_low"]), msg)
        assert not p256_verify.verify(doc["pub"], case["r"] + case["s"], msg + b"x")


def test_own_signatures_verify_and_tampering_fails():
    for key in _doc()["keys"][:3]:
        d = int(key["raw"], 16)
        msg = b"pw1-fw\n" + key["raw"].encode()
        sig = p256.sign(d, msg)
        assert p256_verify.verify(key["pub"], sig, b"pw1-fw\n", key["raw"].encode())
        bad = bytearray(sig)
        bad[5] ^= 1
        assert not p256_verify.verify(key["pub"], bytes(bad), msg)
        other = _doc()["keys"][3]["pub"]
        assert not p256_verify.verify(other, sig, msg)


def test_malformed_inputs_are_refused_not_raised():
    pub = _doc()["rfc6979_a25"]["pub"]
    case = _doc()["rfc6979_a25"]["cases"][0]
    sig = case["r"] + case["s"]
    assert not p256_verify.verify(pub, sig[:-2], b"sample")
    assert not p256_verify.verify(pub, "zz" + sig[2:], b"sample")
    assert not p256_verify.verify(pub, "00" * 64, b"sample")
    assert not p256_verify.verify(pub[:-1] + "0", sig, b"sample")  # off the curve
    assert not p256_verify.verify("05" + pub[2:], sig, b"sample")


def test_against_cryptography():
    try:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import (
            decode_dss_signature,
            encode_dss_signature,
        )
    except ImportError:  # MicroPython: the vectors above are its check
        return
    for i in range(8):
        key = ec.generate_private_key(ec.SECP256R1())
        nums = key.public_key().public_numbers()
        pub = "04%064x%064x" % (nums.x, nums.y)
        msg = b"pw1-fw\n" + bytes([i]) * (i * 37)
        r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
        assert p256_verify.verify(pub, r.to_bytes(32, "big") + s.to_bytes(32, "big"), msg)
        assert not p256_verify.verify(pub, r.to_bytes(32, "big") + s.to_bytes(32, "big"),
                                      msg + b"!")
        d = key.private_numbers().private_value
        ours = p256.sign(d, msg)
        der = encode_dss_signature(int.from_bytes(ours[:32], "big"),
                                   int.from_bytes(ours[32:], "big"))
        key.public_key().verify(der, msg, ec.ECDSA(hashes.SHA256()))  # raises if wrong
