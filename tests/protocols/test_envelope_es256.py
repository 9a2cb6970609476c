"""The es256 line between the JSON and the HMAC (the device's own signature on custody
events): how the envelope splits it; run under pytest and MicroPython. The signature
itself is checked on the controller (tests/controller/test_device_keys.py)."""

import json

from protocols import envelope
from protocols.hmac_sha256 import hmac_sha256

KEY = b"\x07" * 32
TOPIC = "pw/v1/s/d1/evt"
SIG = "ab" * 64  # any 128 hex digits: the envelope only splits the line off


def _json():
    return json.dumps(envelope.make("d1", 1, 3, 1764072000000, "weighing", {"plate": "X"})).encode()


def _wire(signed, key=KEY):
    mac = hmac_sha256(key, envelope.DOMAIN, TOPIC.encode(), b"\n", signed)
    return signed + b"\nk1:" + envelope._hex(mac).encode()


def _secret(kid):
    return KEY if kid == "k1" else None


def _reason(wire):
    try:
        envelope.open_parts(_secret, TOPIC, wire)
    except envelope.EnvelopeError as exc:
        return exc.reason
    raise AssertionError("accepted")


def test_hmac_covers_everything_before_the_last_newline_including_the_es256_line():
    body = _json()
    wire = _wire(body + b"\nes256:" + SIG.encode())
    fields, kid, es256 = envelope.open_parts(_secret, TOPIC, wire)
    assert (fields["seq"], kid, es256) == (3, "k1", SIG)
    # the HMAC over the JSON alone (the line dropped afterwards) does not pass
    forged = body + b"\nes256:" + SIG.encode() + _wire(body)[len(body):]
    assert _reason(forged) == "bad_signature"


def test_message_without_es256_line_is_read_as_before():
    body = _json()
    fields, _kid, es256 = envelope.open_parts(_secret, TOPIC, _wire(body))
    assert es256 is None and fields["kind"] == "weighing"
    assert envelope.open_message(_secret, TOPIC, _wire(body))[0] == fields
    assert envelope.split(_wire(body))[0] == body


def test_split_gives_the_json_alone_and_split_signed_what_the_hmac_covers():
    body = _json()
    signed = body + b"\nes256:" + SIG.encode()
    wire = _wire(signed)
    assert envelope.split(wire)[0] == body
    assert envelope.split_signed(wire)[0] == signed
    assert envelope.device_line(signed) == (body, SIG)


def test_a_middle_line_other_than_es256_and_128_hex_is_malformed():
    body = _json()
    for line in (b"es256:" + SIG[:-2].encode(), b"es256:" + SIG.upper().encode(),
                 b"es384:" + SIG.encode(), b"", b"es256:" + SIG.encode() + b"\nes256:" +
                 SIG.encode(), b"x" * 134):
        assert _reason(_wire(body + b"\n" + line)) == "bad_shape", line


def test_device_signed_bytes_are_domain_topic_and_json():
    assert envelope.device_signed_bytes(TOPIC, b"{}") == b"pw1-dev\n" + TOPIC.encode() + b"\n{}"
    assert envelope.device_signed_bytes(TOPIC.encode(), b"{}") == \
        envelope.device_signed_bytes(TOPIC, b"{}")


def test_birth_pub_is_optional_and_must_be_an_uncompressed_point_in_hex():
    from protocols import bodies

    good = "04" + "1f" * 64
    assert bodies.check("state", "birth", {"fw": "1"}) is None
    assert bodies.check("state", "birth", {"fw": "1", "pub": good}) is None
    for bad in (good.upper(), "02" + "1f" * 64, good[:-2], 7, good + "00"):
        assert bodies.check("state", "birth", {"fw": "1", "pub": bad}), bad
