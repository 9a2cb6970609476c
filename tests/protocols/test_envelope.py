"""Envelope and HMAC tests from the vector file; run under pytest and MicroPython."""

import json

from protocols import envelope, envelope_shape
from protocols.hmac_sha256 import equal, hmac_sha256
from shared_support import read_file, repo_root


def _vectors():
    return json.loads(read_file(repo_root() + "/protocols/vectors/envelope.json").decode())


def _unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def _secret_for(doc):
    key = _unhex(doc["key_hex"])
    return lambda kid: key if kid == doc["key_id"] else None


def test_hmac_matches_rfc4231_vectors():
    for case in _vectors()["hmac_sha256_rfc4231"]:
        got = hmac_sha256(_unhex(case["key"]), _unhex(case["data"]))
        assert envelope._hex(got) == case["hmac"], case


def test_hmac_over_parts_equals_hmac_over_concatenation():
    key = b"k" * 70
    assert hmac_sha256(key, b"ab", b"", b"cd") == hmac_sha256(key, b"abcd")


def test_equal_is_exact():
    assert equal(b"abc", b"abc")
    assert not equal(b"abc", b"abd")
    assert not equal(b"abc", b"ab")


def test_signature_matches_valid_vectors():
    doc = _vectors()
    key = _unhex(doc["key_hex"])
    for case in doc["valid"]:
        got = envelope.signature(key, case["topic"], case["json"].encode())
        assert got == case["signature"], case["name"]


def test_open_message_accepts_valid_vectors():
    doc = _vectors()
    for case in doc["valid"]:
        fields, kid = envelope.open_message(_secret_for(doc), case["topic"], case["wire"].encode())
        assert kid == doc["key_id"]
        assert fields["seq"] == case["seq"]
        assert fields["dev"] == "wb-gate1"


def test_open_message_rejects_invalid_vectors_with_their_reason():
    doc = _vectors()
    for case in doc["invalid"]:
        try:
            envelope.open_message(_secret_for(doc), case["topic"], case["wire"].encode())
        except envelope.EnvelopeError as exc:
            assert exc.reason == case["reason"], (case["name"], exc.reason)
        else:
            raise AssertionError("accepted invalid vector: " + case["name"])


def test_seal_then_open_round_trips_with_non_ascii_body():
    key = b"\x01" * 32
    topic = "pw/v1/s/d1/evt"
    fields = envelope.make("d1", 2, 7, 1764072000000, "weighing", {"plate": "辽B·A1234"})
    wire = envelope.seal(key, "k2", topic, fields)
    got, kid = envelope.open_message(lambda k: key if k == "k2" else None, topic, wire)
    assert kid == "k2"
    assert got["body"]["plate"] == "辽B·A1234"
    assert got["seq"] == 7


def test_split_rejects_oversize_wire():
    try:
        envelope.split(b"x" * (envelope.MAX_WIRE_BYTES + 1))
    except envelope.EnvelopeError as exc:
        assert exc.reason == "too_large"
    else:
        raise AssertionError("oversize accepted")


def test_parse_rejects_invalid_utf8_and_wrong_shapes():
    def env(**change):
        fields = {"v": 1, "dev": "d", "boot": 0, "seq": 1, "ts": 1, "kind": "k", "body": {}}
        fields.update(change)
        return json.dumps(fields).encode()

    cases = [(b"\xff\xfe", "bad_utf8"), (b"[1, 2]", "bad_shape")]
    for change in ({"v": 2}, {"dev": ""}, {"boot": -1}, {"seq": 1.5}, {"kind": ""},
                   {"body": []}, {"seq": True}):
        cases.append((env(**change), "bad_shape"))
    for raw, reason in cases:
        try:
            envelope_shape.parse(raw)
        except envelope.EnvelopeError as exc:
            assert exc.reason == reason, (raw, exc.reason)
        else:
            raise AssertionError("accepted %r" % raw)


def test_parse_refuses_a_key_given_twice_at_any_depth():
    import sys

    if not envelope_shape.DETECTS_DUPLICATES:
        # MicroPython's json takes no hook; only the controller (CPython) parses with shape
        assert sys.implementation.name == "micropython"
        return
    head = b'{"v": 1, "dev": "d", "boot": 0, "seq": 1, "ts": 1, "kind": "k", '
    for raw, key in ((head + b'"body": {}, "seq": 2}', "seq"),
                     (head + b'"body": {"plate": "A", "plate": "B"}}', "plate"),
                     (head + b'"body": {"x": [{"k": 1, "k": 1}]}}', "k")):
        try:
            envelope_shape.parse(raw)
        except envelope.EnvelopeError as exc:
            assert exc.reason == "duplicate_key", (raw, exc.reason)
            assert repr(key) in exc.detail
        else:
            raise AssertionError("accepted %r" % raw)
    assert envelope_shape.parse(head + b'"body": {"a": {"b": 1}, "b": {"a": 1}}}')["body"] == \
        {"a": {"b": 1}, "b": {"a": 1}}  # the same key in two objects is fine
