"""protocols.p256 reproduces protocols/vectors/devsig.json: RFC 6979's P-256/SHA-256 cases
and the device-signature vectors (which tools/devsig_vectors.py checked against OpenSSL
when it wrote them); pytest and MicroPython."""

import json
from binascii import hexlify

from protocols import envelope, p256
from protocols.hmac_sha256 import hmac_sha256
from shared_support import read_file, repo_root


def _vectors():
    return json.loads(read_file(repo_root() + "/protocols/vectors/devsig.json").decode())


def _unhex(text):
    return bytes(int(text[i:i + 2], 16) for i in range(0, len(text), 2))


def _hex(data):
    return hexlify(data).decode()


def test_rfc6979_a25_key_nonce_and_signatures():
    doc = _vectors()["rfc6979_a25"]
    x = int(doc["x"], 16)
    assert p256.public(x) == doc["pub"]
    assert len(doc["cases"]) == 2
    for case in doc["cases"]:
        k = int(case["k"], 16)
        # the RFC's nonce gives r: the x of k*G
        assert "%064x" % (int(p256.public(k)[2:66], 16) % p256.N) == case["r"]
        s = int(case["s"], 16)
        assert case["s_low"] == "%064x" % min(s, p256.N - s)
        sig = p256.sign(x, case["message"].encode())
        assert _hex(sig) == case["r"] + case["s_low"] == case["sig"], case["message"]


def test_keys_from_raw_bytes_and_their_public_points():
    doc = _vectors()
    assert len(doc["keys"]) >= 8
    for key in doc["keys"]:
        d = p256.scalar(_unhex(key["raw"]))
        assert d is not None and p256.public(d) == key["pub"]
        assert len(key["pub"]) == 130 and key["pub"][:2] == "04"
    for raw in doc["rejected_raw"]:  # 0, n, 2^256 - 1, and 31 bytes: drawn again
        assert p256.scalar(_unhex(raw)) is None, raw


def test_signatures_over_the_signed_bytes_are_deterministic_and_low_s():
    doc = _vectors()
    for case in doc["signatures"]:
        d = p256.scalar(_unhex(doc["keys"][case["key"]]["raw"]))
        message = envelope.device_signed_bytes(case["topic"], case["json"].encode())
        assert _hex(message) == case["message_hex"]
        sig = p256.sign(d, message)
        assert _hex(sig) == case["sig"]
        assert int.from_bytes(sig[32:], "big") <= p256.N // 2
        # in parts, as the device signs (no copy of the JSON): the same signature
        assert p256.sign(d, b"pw1-dev\n", case["topic"].encode(), b"\n",
                         case["json"].encode()) == sig


def test_wire_vector_is_a_device_signed_event_under_the_fixture_hmac_key():
    doc = _vectors()
    w = doc["wire"]
    d = p256.scalar(_unhex(doc["keys"][w["device_key"]]["raw"]))
    assert p256.public(d) == w["pub"]
    json_bytes = w["json"].encode()
    es = "es256:" + _hex(p256.sign(d, envelope.device_signed_bytes(w["topic"], json_bytes)))
    assert es == w["es256"]
    head = json_bytes + b"\n" + es.encode()
    mac = _hex(hmac_sha256(_unhex(w["hmac_key_hex"]), b"pw1\n", w["topic"].encode(), b"\n",
                           head))
    assert w["wire"].encode() == head + b"\n" + w["key_id"].encode() + b":" + mac.encode()
    key = _unhex(w["hmac_key_hex"])
    fields, kid, got = envelope.open_parts(lambda k: key if k == w["key_id"] else None,
                                           w["topic"], w["wire"].encode(), False)
    assert (kid, got) == (w["key_id"], es[6:]) and fields["seq"] == 42
