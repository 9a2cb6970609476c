"""edge.signer, the device's half of the envelope, agrees with protocols.envelope byte for
byte: what it seals the controller's open_message accepts, and it refuses a downlink for
the same reasons; pytest and MicroPython."""

import json

from edge.signer import EnvelopeError, Signer
from protocols import envelope
from shared_support import raises

K1 = b"\x11" * 32
K2 = b"\x22" * 32
TOPIC = "pw/v1/dl/wb1/ack"


def _only(kid, secret):
    return lambda k: secret if k == kid else None


def test_seal_is_the_envelope_seal_byte_for_byte():
    s = Signer("wb1", 7, "k1", K1)
    body = {"plate": "辽B12345", "gross_kg": 41260}
    want = envelope.seal(K1, "k1", TOPIC, envelope.make("wb1", 7, 42, 1764072000000,
                                                        "weighing", body))
    assert s.seal(TOPIC, 42, 1764072000000, "weighing", body) == want
    assert s.seal(TOPIC.encode(), 42, 1764072000000, "weighing", body) == want
    fields, kid = envelope.open_message(_only("k1", K1), TOPIC, want, False)
    assert kid == "k1" and fields["seq"] == 42 and fields["body"] == body


def test_reseal_signs_the_same_fields_with_the_current_key():
    old = Signer("wb1", 7, "k1", K1).seal(TOPIC, 3, 5, "weighing", {"gross_kg": 1})
    new = Signer("wb1", 8, "k2", K2)
    assert Signer("wb1", 7, "k1", K1).reseal(TOPIC, old) is None
    wire = new.reseal(TOPIC, old)
    cut = old.rfind(b"\n")
    assert wire == envelope.seal(K2, "k2", TOPIC, json.loads(old[:cut]))


def test_open_refuses_for_the_controllers_reasons():
    me = Signer("wb1", 1, "k1", K1)
    good = envelope.seal(K1, "k1", TOPIC, {"v": 1, "body": {"upto": 5}})
    assert me.open(TOPIC, good)["body"]["upto"] == 5
    cut = good.rfind(b"\n")
    bad = [good[:-1] + (b"0" if good[-1:] != b"0" else b"1"),  # bad_signature
           envelope.seal(K2, "k2", TOPIC, {"v": 1}),  # unknown_key
           good[:cut],  # no_signature
           good[:cut] + b"\nk1:" + b"G" * 64,
           good[:cut + 1] + b":" + good[cut + 1:],
           b"x" * 16385,  # too_large
           b"{" + good[cut:]]
    bad[-1] = b"{" + b"\n" + b"k1:" + envelope.signature(K1, TOPIC, b"{").encode()  # bad_json
    for wire in bad:
        want = raises(envelope.EnvelopeError, envelope.open_message, _only("k1", K1), TOPIC,
                      wire, False)
        got = raises(EnvelopeError, me.open, TOPIC, wire)
        assert str(got) == str(want), (got, want)
        assert isinstance(got, ValueError)
    # on another topic the signature does not hold
    assert str(raises(EnvelopeError, me.open, "pw/v1/dl/wb2/ack", good)).startswith(
        "bad_signature")
