"""edge.signer, the device's half of the envelope, agrees with protocols.envelope byte for
byte: what it seals the controller's open_message accepts, and it refuses a downlink for
the same reasons, and its custody events carry the device signature the envelope splits
off; pytest and MicroPython."""

import json
from binascii import hexlify

from edge.signer import EnvelopeError, Signer
from protocols import envelope, p256
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
    # the JSON byte for byte (not parsed and dumped again: MicroPython's dicts reorder it)
    assert wire == old[:cut] + b"\nk2:" + envelope.signature(K2, TOPIC, old[:cut]).encode()
    assert envelope.open_message(_only("k2", K2), TOPIC, wire, False)[0] == json.loads(old[:cut])


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


# -- the device signature (es256 line) ---------------------------------------------------

D = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721  # RFC 6979 A.2.5
T_EVT = "pw/v1/dl/wb1/evt"


def _es256(topic, json_bytes):
    return p256.sign(D, envelope.device_signed_bytes(topic, json_bytes))


def test_seal_on_evt_with_a_device_key_carries_the_es256_line_the_envelope_splits():
    s = Signer("wb1", 7, "k1", K1, D)
    body = {"plate": "辽B12345", "gross_kg": 41260}
    wire = s.seal(T_EVT, 42, 1764072000000, "weighing", body)
    json_bytes = json.dumps(envelope.make("wb1", 7, 42, 1764072000000, "weighing",
                                          body)).encode()
    head = json_bytes + b"\nes256:" + hexlify(_es256(T_EVT, json_bytes))
    assert wire == head + b"\nk1:" + envelope.signature(K1, T_EVT, head).encode()
    fields, kid, es = envelope.open_parts(_only("k1", K1), T_EVT, wire, False)
    assert (kid, fields["body"], es) == ("k1", body, hexlify(_es256(T_EVT, json_bytes)).decode())
    assert s.seal(T_EVT.encode(), 42, 1764072000000, "weighing", body) == wire  # deterministic


def test_seal_off_evt_or_without_a_key_has_no_es256_line():
    body = {"fw": "0.1.0"}
    for s, topic in ((Signer("wb1", 7, "k1", K1, D), "pw/v1/dl/wb1/state"),
                     (Signer("wb1", 7, "k1", K1, D), "pw/v1/dl/wb1/tele"),
                     (Signer("wb1", 7, "k1", K1), T_EVT)):
        wire = s.seal(topic, 1, 5, "birth", body)
        assert wire == envelope.seal(K1, "k1", topic, envelope.make("wb1", 7, 1, 5, "birth", body))
        assert b"es256:" not in wire


def test_reseal_keeps_the_device_signature_and_changes_only_the_hmac_line():
    old = Signer("wb1", 7, "k1", K1, D).seal(T_EVT, 3, 5, "weighing", {"gross_kg": 1})
    new = Signer("wb1", 8, "k2", K2, D)
    assert Signer("wb1", 7, "k1", K1, D).reseal(T_EVT, old) is None
    wire = new.reseal(T_EVT, old)
    cut = old.rfind(b"\n")
    assert wire[:cut + 1] == old[:cut + 1]
    assert wire == old[:cut] + b"\nk2:" + envelope.signature(K2, T_EVT, old[:cut]).encode()
    # a board without its key any more (signing turned off) still keeps the line it has
    assert Signer("wb1", 8, "k2", K2).reseal(T_EVT, old) == wire
    _, kid, es = envelope.open_parts(_only("k2", K2), T_EVT, wire, False)
    assert kid == "k2" and es == old[cut - 128:cut].decode()


def test_reseal_signs_an_evt_record_stored_before_the_device_had_its_key():
    old = Signer("wb1", 7, "k1", K1).seal(T_EVT, 3, 5, "weighing", {"gross_kg": 1})
    cut = old.rfind(b"\n")
    wire = Signer("wb1", 8, "k1", K1, D).reseal(T_EVT, old)
    head = old[:cut] + b"\nes256:" + hexlify(_es256(T_EVT, old[:cut]))
    assert wire == head + b"\nk1:" + envelope.signature(K1, T_EVT, head).encode()
    # not on another channel, where a device signature has no place
    other = Signer("wb1", 7, "k1", K1).seal("pw/v1/dl/wb1/state", 3, 5, "birth", {"fw": "x"})
    assert Signer("wb1", 8, "k1", K1, D).reseal("pw/v1/dl/wb1/state", other) is None


class _TwoCars:
    """A body that writes its own JSON, as the rail driver's Train does."""

    def __init__(self, n=2):
        self.n = n

    def write_json(self, w):
        w.write('{"cars": [')
        for i in range(self.n):
            w.write(("%s[%d, \"DLCX\"]" % (", " if i else "", i)))
        w.write("]}")


def test_seal_into_a_buffer_is_seal_byte_for_byte_and_falls_back_when_it_does_not_fit():
    from edge.seal_into import seal_into

    evt = "pw/v1/hil/wb1/evt"
    body = {"plate": "辽B12345", "gross_kg": 41260, "cars": [[1, "QNSL", 502, None]]}
    for dkey in (None, 7):
        s = Signer("wb1", 7, "k1", K1, dkey)
        for topic in (TOPIC, evt):
            want = s.seal(topic, 42, 1764072000000, "weighing", body)
            buf = bytearray(1024)
            got = seal_into(s, buf, topic, 42, 1764072000000, "weighing", body)
            assert isinstance(got, memoryview) and bytes(got) == want
            assert bytes(buf[:len(want)]) == want  # built in place
            # too small for it: sealed the allocating way, the same bytes
            assert bytes(seal_into(s, bytearray(64), topic, 42, 1764072000000, "weighing",
                                   body)) == want
    # a body that writes its own JSON: the envelope opens to it; too big is refused
    s = Signer("wb1", 7, "k1", K1, 7)
    wire = bytes(seal_into(s, bytearray(1024), evt, 3, 5, "passage", _TwoCars()))
    fields, _ = envelope.open_message(_only("k1", K1), evt, wire, False)
    assert fields["body"] == {"cars": [[0, "DLCX"], [1, "DLCX"]]} and fields["seq"] == 3
    assert raises(ValueError, seal_into, s, bytearray(256), evt, 3, 5, "passage",
                  _TwoCars(40))


def test_seal_in_parts_is_the_same_wire():
    for dkey in (None, 7):
        s = Signer("wb1", 7, "k1", K1, dkey)
        for topic in (TOPIC, "pw/v1/hil/wb1/evt"):
            whole = s.seal(topic, 9, 5, "weighing", {"gross_kg": 1})
            parts = s.seal(topic, 9, 5, "weighing", {"gross_kg": 1}, parts=True)
            assert type(parts) is tuple and b"".join(bytes(p) for p in parts) == whole


def test_seal_into_installed_seals_custody_events_in_the_buffer_and_the_rest_as_before():
    from edge.seal_into import install

    evt = "pw/v1/hil/rail1/evt"
    plain = Signer("rail1", 7, "k1", K1, 7)
    s = Signer("rail1", 7, "k1", K1, 7)
    buf = bytearray(1024)
    install(s, buf)
    got = s.seal(evt, 3, 5, "passage", _TwoCars(), parts=True)
    assert isinstance(got, memoryview) and bytes(buf[:len(got)]) == bytes(got)
    fields, _ = envelope.open_message(_only("k1", K1), evt, bytes(got), False)
    assert fields["body"]["cars"] == [[0, "DLCX"], [1, "DLCX"]]
    # not an evt topic (the birth): the allocating way, not in the buffer
    birth = s.seal("pw/v1/hil/rail1/state", 0, 5, "birth", {"fw": "x"})
    assert birth == plain.seal("pw/v1/hil/rail1/state", 0, 5, "birth", {"fw": "x"})
    # too big for the buffer: a dict body the allocating way, the same bytes
    big = {"cars": [[i, "QNSL", 502] for i in range(100)]}
    small = Signer("rail1", 7, "k1", K1, 7)
    install(small, bytearray(256))
    assert bytes(small.seal(evt, 4, 5, "weighing", big)) == plain.seal(evt, 4, 5, "weighing", big)
