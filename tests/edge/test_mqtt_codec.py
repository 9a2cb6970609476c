"""MQTT 3.1.1 packet vectors; runs under pytest and under MicroPython (tests/mpy_runner.py).

The CONNECT vectors are the bytes paho-mqtt 2.2 sends for the same options
(captured once from a socket), so the codec is checked against an independent client.
"""

from edge.net import mqtt_codec as codec


def _raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{exc_type.__name__} not raised")


def _h(text):
    return bytes(int(x, 16) for x in text.split())


def _rl(n):
    buf = bytearray(codec.remaining_length_size(n))
    assert codec.remaining_length_into(buf, 0, n) == len(buf)
    return bytes(buf)


def _publish(topic, payload, qos=0, retain=False, pid=0, dup=False):
    """A whole PUBLISH, built the way the client sends it: header buffer + payload."""
    topic = topic.encode()
    buf = bytearray(codec.publish_header_size(topic, qos))
    n = codec.publish_header_into(buf, topic, len(payload), qos, retain, dup, pid)
    return bytes(buf[:n]) + payload


def test_connect_minimal_matches_paho_bytes():
    want = _h("10 14 00 04 4d 51 54 54 04 02 00 1e 00 08 70 77 2d 64 65 76 2d 31")
    assert codec.encode_connect("pw-dev-1", 30, True) == want


def test_connect_with_will_user_password_matches_paho_bytes():
    want = _h(
        "10 40 00 04 4d 51 54 54 04 ee 00 1e 00 08 70 77 2d 64 65 76 2d 31"
        " 00 14 70 77 2f 76 31 2f 64 6c 2f 64 65 76 2d 31 2f 73 74 61 74 65"
        " 00 07 6f 66 66 6c 69 6e 65 00 03 64 65 76 00 06 73 33 63 72 65 74"
    )
    will = ("pw/v1/dl/dev-1/state", b"offline", 1, True)
    assert codec.encode_connect("pw-dev-1", 30, True, "dev", "s3cret", will) == want


def test_connect_persistent_session_clears_clean_flag():
    pkt = codec.encode_connect("d", 60, False)
    assert pkt[9] == 0x00  # connect flags
    assert pkt[10:12] == b"\x00\x3c"  # keepalive 60 s


def test_connect_password_without_user_is_rejected():
    _raises(ValueError, codec.encode_connect, "d", 30, True, None, "pw")


def test_connect_keepalive_out_of_range_is_rejected():
    _raises(ValueError, codec.encode_connect, "d", 65536)


def test_remaining_length_boundaries():
    cases = [
        (0, "00"),
        (127, "7f"),
        (128, "80 01"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"),
        (268435455, "ff ff ff 7f"),
    ]
    for value, hexed in cases:
        enc = _rl(value)
        assert enc == _h(hexed), (value, enc)
        assert codec.remaining_length_size(value) == len(enc)
        assert codec.decode_remaining_length(b"\x30" + enc, 1) == (value, 1 + len(enc))


def test_remaining_length_over_limit_is_rejected():
    _raises(ValueError, _rl, 268435456)
    _raises(ValueError, _rl, -1)


def test_remaining_length_of_five_bytes_is_a_protocol_error():
    _raises(codec.ProtocolError, codec.decode_remaining_length, b"\xff\xff\xff\xff\x01")


def test_remaining_length_truncated_is_a_protocol_error():
    _raises(codec.ProtocolError, codec.decode_remaining_length, b"\x80\x80")


def test_connack_accepted_returns_session_present():
    assert codec.parse_connack(b"\x00\x00") is False
    assert codec.parse_connack(b"\x01\x00") is True


def test_connack_refused_codes_carry_reason_text():
    for code in range(1, 6):
        exc = _raises(codec.ConnectRefused, codec.parse_connack, bytes((0, code)))
        assert exc.code == code
        assert exc.reason == codec.CONNACK_REASONS[code]
        assert isinstance(exc, codec.MQTTError)
    exc = _raises(codec.ConnectRefused, codec.parse_connack, b"\x00\x05")
    assert "not authorized" in str(exc)


def test_connack_malformed_is_a_protocol_error():
    _raises(codec.ProtocolError, codec.parse_connack, b"\x02\x00")
    _raises(codec.ProtocolError, codec.parse_connack, b"\x00")


def test_publish_qos1_bytes():
    assert _publish("a/b", b"hi", 1, False, 10) == _h("32 09 00 03 61 2f 62 00 0a 68 69")


def test_publish_qos0_retained_dup_bytes():
    assert _publish("a/b", b"hi", 0, True) == _h("31 07 00 03 61 2f 62 68 69")
    assert _publish("a/b", b"", 1, False, 1, True) == _h("3a 07 00 03 61 2f 62 00 01")


def test_publish_header_reuses_one_buffer():
    buf = bytearray(codec.publish_header_size(b"pw/v1/site/dev/evt", 1))
    n = codec.publish_header_into(buf, b"pw/v1/site/dev/evt", 300, 1, False, False, 65535)
    assert bytes(buf[:n]) == _h("32 c2 02 00 12") + b"pw/v1/site/dev/evt" + b"\xff\xff"
    n = codec.publish_header_into(buf, b"t", 0, 0)
    assert bytes(buf[:n]) == _h("30 03 00 01 74")


def test_publish_with_two_byte_remaining_length():
    payload = bytes(range(256)) * 8  # 2048 bytes: remaining length needs 2 bytes
    pkt = _publish("t/x", payload, 1, False, 7)
    size, off = codec.decode_remaining_length(pkt, 1)
    assert off == 3 and size == len(pkt) - 3 == 2 + 3 + 2 + 2048
    assert pkt[3:10] == _h("00 03 74 2f 78 00 07") and pkt[10:] == payload


def test_publish_utf8_topic_is_length_prefixed_in_bytes():
    topic = "港/大连"
    pkt = _publish(topic, b"", 0)
    assert pkt[1] == 2 + 10 and pkt[2:4] == b"\x00\x0a" and pkt[4:].decode() == topic


def test_publish_to_wildcard_or_empty_topic_is_rejected():
    _raises(ValueError, _publish, "a/+/b", b"x")
    _raises(ValueError, _publish, "a/#", b"x")
    _raises(ValueError, _publish, "", b"x")


def test_publish_qos1_needs_packet_id_in_range():
    _raises(ValueError, _publish, "a", b"x", 1, False, 0)
    _raises(ValueError, _publish, "a", b"x", 1, False, 65536)


def test_publish_flags_decode_and_qos3_is_a_protocol_error():
    assert codec.publish_flags(0x3B) == (1, True, True)
    assert codec.publish_flags(0x30) == (0, False, False)
    _raises(codec.ProtocolError, codec.publish_flags, 0x36)


def test_puback_and_subscribe_bytes():
    assert codec.encode_puback(0x1234) == _h("40 02 12 34")
    assert codec.parse_ack(b"\x12\x34") == 0x1234
    assert codec.encode_subscribe(1, "a/#", 1) == _h("82 08 00 01 00 03 61 2f 23 01")


def test_suback_parse_granted_and_failure():
    assert codec.parse_suback(b"\x00\x01\x01") == (1, [1])
    assert codec.parse_suback(b"\xff\xff\x80") == (65535, [0x80])
    _raises(codec.ProtocolError, codec.parse_suback, b"\x00\x01")


def test_fixed_packets():
    assert codec.PINGREQ == b"\xc0\x00"
    assert codec.DISCONNECT == b"\xe0\x00"


def test_exceptions_share_one_root():
    for cls in (codec.ProtocolError, codec.ConnectRefused, codec.MQTTTimeout,
                codec.ConnectionLost):
        assert issubclass(cls, codec.MQTTError)
