"""MQTT 3.1.1 packet vectors for edge.net.mqtt's encoders; runs under pytest and MicroPython.

The CONNECT vectors are the bytes paho-mqtt 2.2 sends for the same options
(captured once from a socket), so the encoder is checked against an independent client.
Decoding happens in the client's reader; tests/edge/test_mqtt_client.py feeds it bytes.
"""

from edge.net import mqtt
from shared_support import hexbytes as _h
from shared_support import raises as _raises


def _publish(topic, payload, qos=0, retain=False, pid=0):
    """A whole PUBLISH as the client puts it on the wire: header, then the payload."""
    return bytes(mqtt.publish_header(topic, len(payload), qos, retain, pid)) + payload


def test_connect_minimal_matches_paho_bytes():
    want = _h("10 14 00 04 4d 51 54 54 04 02 00 1e 00 08 70 77 2d 64 65 76 2d 31")
    assert mqtt.connect_packet("pw-dev-1", 30, True) == want


def test_connect_with_will_user_password_matches_paho_bytes():
    want = _h(
        "10 40 00 04 4d 51 54 54 04 ee 00 1e 00 08 70 77 2d 64 65 76 2d 31"
        " 00 14 70 77 2f 76 31 2f 64 6c 2f 64 65 76 2d 31 2f 73 74 61 74 65"
        " 00 07 6f 66 66 6c 69 6e 65 00 03 64 65 76 00 06 73 33 63 72 65 74"
    )
    will = ("pw/v1/dl/dev-1/state", b"offline", 1, True)
    assert mqtt.connect_packet("pw-dev-1", 30, True, "dev", "s3cret", will) == want


def test_connect_will_qos0_not_retained_and_bytes_fields():
    pkt = mqtt.connect_packet(b"d", 0, True, None, None, (b"w", b"", 0, False))
    assert pkt == _h("10 12 00 04 4d 51 54 54 04 06 00 00 00 01 64 00 01 77 00 00")


def test_connect_persistent_session_clears_clean_flag():
    pkt = mqtt.connect_packet("d", 60, False)
    assert pkt[9] == 0x00  # connect flags
    assert pkt[10:12] == b"\x00\x3c"  # keepalive 60 s


def test_connect_password_without_user_is_rejected():
    _raises(ValueError, mqtt.connect_packet, "d", 30, True, None, "pw")


def test_connect_keepalive_out_of_range_is_rejected():
    _raises(ValueError, mqtt.connect_packet, "d", 65536)


def test_connect_string_over_65535_bytes_is_rejected():
    _raises(ValueError, mqtt.connect_packet, "d" * 65536)
    assert len(mqtt.connect_packet("d" * 65535)) == 1 + 3 + 10 + 2 + 65535  # at the limit


def test_remaining_length_boundaries():
    # PUBLISH to "t" with QoS 0: remaining length = 3 (topic) + payload length
    cases = [
        (127, "7f"),
        (128, "80 01"),
        (16383, "ff 7f"),
        (16384, "80 80 01"),
        (2097151, "ff ff 7f"),
        (2097152, "80 80 80 01"),
        (268435455, "ff ff ff 7f"),
    ]
    for value, hexed in cases:
        hdr = mqtt.publish_header("t", value - 3)
        assert bytes(hdr) == b"\x30" + _h(hexed) + b"\x00\x01t", (value, hdr)
    assert bytes(mqtt._packet(0xE0, 0, [])[0]) == b"\xe0\x00"  # 0: DISCONNECT


def test_publish_qos1_bytes():
    assert _publish("a/b", b"hi", 1, False, 10) == _h("32 09 00 03 61 2f 62 00 0a 68 69")


def test_publish_qos0_retained_bytes():
    assert _publish("a/b", b"hi", 0, True) == _h("31 07 00 03 61 2f 62 68 69")
    assert _publish("a/b", b"", 1, True, 65535) == _h("33 07 00 03 61 2f 62 ff ff")


def test_publish_with_two_byte_remaining_length():
    payload = bytes(range(256)) * 8  # 2048 bytes: remaining length needs 2 bytes
    pkt = _publish("t/x", payload, 1, False, 7)
    assert pkt[:10] == _h("32 87 10 00 03 74 2f 78 00 07") and pkt[10:] == payload
    assert 0x07 + (0x10 << 7) == 2 + 3 + 2 + 2048


def test_publish_utf8_topic_is_length_prefixed_in_bytes():
    topic = "港/大连"
    pkt = _publish(topic, b"", 0)
    assert pkt[1] == 2 + 10 and pkt[2:4] == b"\x00\x0a" and pkt[4:].decode() == topic
    assert _publish(topic.encode(), b"", 0) == pkt  # bytes topics as they are


def test_subscribe_bytes():
    assert mqtt.subscribe_packet(1, "a/#", 1) == _h("82 08 00 01 00 03 61 2f 23 01")
    assert mqtt.subscribe_packet(0x1234, b"x", 0) == _h("82 06 12 34 00 01 78 00")


def test_exceptions_share_one_root():
    for cls in (mqtt.ConnectRefused, mqtt.MQTTTimeout, mqtt.ConnectionLost):
        assert issubclass(cls, mqtt.MQTTError)
    assert not issubclass(mqtt.MQTTTimeout, mqtt.ConnectionLost)
