"""The device signature on CPython: protocols.p256 against OpenSSL (cryptography) on many
keys and messages, the committed vector file is what tools.devsig_vectors makes, and
tools.devsig_cost measures it under the real MicroPython."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from protocols import p256
from tools import devsig_cost, devsig_vectors


def test_vector_file_is_what_the_generator_makes() -> None:
    assert devsig_vectors.OUT.read_text(encoding="utf-8") == devsig_vectors.render()


def test_p256_agrees_with_openssl_on_random_keys_and_messages() -> None:
    for i in range(120):
        raw = os.urandom(32)
        d = p256.scalar(raw)
        if d is None:  # 1 in 2^32: the agent draws again
            continue
        message = os.urandom(i * 7 % 600)
        pub = p256.public(d)
        assert pub == devsig_vectors.openssl_public(d)
        sig = p256.sign(d, message)
        # OpenSSL's RFC 6979 nonce gives the same r, and s once brought to low s
        assert sig == devsig_vectors.openssl_sign(d, message)
        assert int.from_bytes(sig[32:], "big") <= p256.N // 2
        assert devsig_vectors.openssl_verify(pub, message, sig)
        # any other message, or a bit flipped in the signature, does not verify
        assert not devsig_vectors.openssl_verify(pub, message + b"x", sig)
        bad = bytearray(sig)
        bad[i % 64] ^= 1 << (i % 8)
        assert not devsig_vectors.openssl_verify(pub, message, bytes(bad))


def test_p256_edges_of_the_scalar_range() -> None:
    for d in (1, 2, p256.N - 2, p256.N - 1):
        assert p256.public(d) == devsig_vectors.openssl_public(d)
        msg = hashlib.sha256(b"%d" % d).digest()
        assert p256.sign(d, msg) == devsig_vectors.openssl_sign(d, msg)
    assert p256.scalar(p256.N.to_bytes(32, "big")) is None
    assert p256.scalar((p256.N - 1).to_bytes(32, "big")) == p256.N - 1
    assert p256.scalar(bytes(32)) is None and p256.scalar(b"\x01" * 33) is None


def test_a_signature_over_another_topic_or_json_does_not_verify() -> None:
    doc = json.loads(devsig_vectors.OUT.read_text(encoding="utf-8"))
    w = doc["wire"]
    es = bytes.fromhex(w["es256"][6:])
    good = devsig_vectors.signed_bytes(w["topic"], w["json"].encode())
    assert devsig_vectors.openssl_verify(w["pub"], good, es)
    other_topic = devsig_vectors.signed_bytes(w["topic"].replace("wb-gate1", "wb-gate2"),
                                              w["json"].encode())
    edited = devsig_vectors.signed_bytes(w["topic"], w["json"].replace("45230", "45231")
                                         .encode())
    assert not devsig_vectors.openssl_verify(w["pub"], other_topic, es)
    assert not devsig_vectors.openssl_verify(w["pub"], edited, es)
    # another device's key does not verify it either
    assert not devsig_vectors.openssl_verify(doc["keys"][3]["pub"], good, es)


def test_devsig_cost_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert devsig_cost.main(["--runs", "5"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["heap"] == "96K" and got["sign_ms"]["n"] == 5
    assert 0 < got["sign_ms"]["min"] <= got["sign_ms"]["median"] <= got["sign_ms"]["max"]
    assert got["sign_ms_agent_like"]["n"] == 5 and got["public_ms"] > 0
    assert got["sign_ms_loaded_per_use"]["n"] == 5 and got["sign_ms_loaded_per_use"]["min"] > 0
    # the budget edge/FAILURES.md states: the module's heap, and the churn of one signature
    assert 1024 < got["import_bytes"] <= 3 * 1024, got
    assert 100_000 < got["allocated_per_sign_bytes"] < 3_000_000, got


def test_devsig_cost_refuses_zero_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert devsig_cost.main(["--runs", "0"]) == 2
    assert "--runs" in capsys.readouterr().err
