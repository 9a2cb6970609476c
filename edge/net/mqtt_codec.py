"""MQTT 3.1.1 packets as bytes: the pure half of the firmware's MQTT client (no I/O).

Encoders return ``bytes`` or write into a caller's buffer with ``struct.pack_into`` so
that the client can reuse one header buffer; decoders take packet bodies and raise
``ProtocolError`` on anything malformed. The exception hierarchy of the client lives
here too, so that decoding errors and link errors share one root, ``MQTTError``.

Limits (MQTT 3.1.1 §2.2.3, §1.5.3): remaining length 0–268,435,455 in 1–4 bytes,
strings (topics, client id, user, password) at most 65,535 bytes, QoS 0–2 on the
wire (the client itself publishes and subscribes with QoS 0 and 1 only).
Runs unchanged under MicroPython and CPython; the tests in
``tests/edge/test_mqtt_codec.py`` carry byte-exact vectors. Only what the firmware
uses is here: every function costs heap on the device (about 150 bytes each, an
exception class about 230, measured with ``gc.mem_free``).
"""

import struct

# Packet types (first byte, high nibble) and the fixed packets.
CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82  # type 8 with the mandatory flags 0b0010
SUBACK = 0x90
UNSUBACK = 0xB0
PINGREQ = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = b"\xe0\x00"

MAX_REMAINING = 268435455
MAX_STRING = 65535
SUBACK_FAILURE = 0x80

CONNACK_REASONS = {
    1: "unacceptable protocol version (broker lacks MQTT 3.1.1)",
    2: "identifier rejected (use 1-23 letters and digits)",
    3: "server unavailable (retry later)",
    4: "bad user name or password (check the device credentials)",
    5: "not authorized (check the device credentials and the broker ACL)",
}


class MQTTError(Exception):
    """Root of every error raised by the firmware's MQTT client."""


class ProtocolError(MQTTError):
    """A packet is malformed or unexpected; the client drops the link."""


class ConnectRefused(MQTTError):
    """The broker answered CONNECT with a non-zero CONNACK return code (1-5)."""

    def __init__(self, code):
        reason = CONNACK_REASONS.get(code, "unknown return code")
        super().__init__("broker refused the connection (code %d): %s" % (code, reason))
        self.code = code
        self.reason = reason


class MQTTTimeout(MQTTError):
    """An acknowledgement (CONNACK, PUBACK, SUBACK) or a message did not come in time."""


class ConnectionLost(MQTTError):
    """The TCP link is down, could not be opened, or died while waiting; connect() again."""


def _b(value):
    return value.encode() if isinstance(value, str) else bytes(value)


def remaining_length_size(n):
    """How many bytes the varint encoding of ``n`` takes (1-4)."""
    if n < 0 or n > MAX_REMAINING:
        raise ValueError("remaining length %d outside 0..%d" % (n, MAX_REMAINING))
    size = 1
    while n > 127:
        n >>= 7
        size += 1
    return size


def remaining_length_into(buf, off, n):
    """Write the varint ``n`` into ``buf`` at ``off``; return the offset after it."""
    remaining_length_size(n)
    while True:
        byte = n & 0x7F
        n >>= 7
        buf[off] = byte | 0x80 if n else byte
        off += 1
        if not n:
            return off


def decode_remaining_length(buf, off=0):
    """Decode the varint at ``buf[off]``; return ``(value, offset after it)``."""
    value = 0
    shift = 0
    for i in range(4):
        if off + i >= len(buf):
            raise ProtocolError("remaining length truncated")
        byte = buf[off + i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, off + i + 1
        shift += 7
    raise ProtocolError("remaining length longer than 4 bytes")


def _string_into(buf, off, data):
    struct.pack_into(">H", buf, off, len(data))
    off += 2
    buf[off : off + len(data)] = data
    return off + len(data)


def _check_string(data, what):
    if len(data) > MAX_STRING:
        raise ValueError("%s is %d bytes, MQTT allows %d" % (what, len(data), MAX_STRING))
    return data


def _packet(first, size):
    """A zeroed packet buffer with the fixed header written; return (buf, body offset)."""
    buf = bytearray(1 + remaining_length_size(size) + size)
    buf[0] = first
    return buf, remaining_length_into(buf, 1, size)


def encode_connect(client_id, keepalive=30, clean_session=True, user=None, password=None,
                   will=None):
    """CONNECT for MQTT 3.1.1; ``will`` is ``(topic, payload, qos, retain)`` or None."""
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive %d outside 0..65535 s" % keepalive)
    cid = _check_string(_b(client_id), "client id")
    flags = 0x02 if clean_session else 0
    size = 10 + 2 + len(cid)
    if will is not None:
        wtopic = _check_string(_b(will[0]), "will topic")
        wpayload = _check_string(_b(will[1]), "will payload")
        if not 0 <= will[2] <= 2:
            raise ValueError("will QoS must be 0, 1 or 2")
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
        size += 4 + len(wtopic) + len(wpayload)
    if user is not None:
        user = _check_string(_b(user), "user name")
        flags |= 0x80
        size += 2 + len(user)
    if password is not None:
        if user is None:
            raise ValueError("MQTT 3.1.1 sends a password only together with a user name")
        password = _check_string(_b(password), "password")
        flags |= 0x40
        size += 2 + len(password)
    buf, off = _packet(CONNECT, size)
    off = _string_into(buf, off, b"MQTT")
    struct.pack_into(">BBH", buf, off, 4, flags, keepalive)
    off = _string_into(buf, off + 4, cid)
    if will is not None:
        off = _string_into(buf, off, wtopic)
        off = _string_into(buf, off, wpayload)
    if user is not None:
        off = _string_into(buf, off, user)
    if password is not None:
        off = _string_into(buf, off, password)
    return bytes(buf)


def parse_connack(body):
    """Return session_present from a CONNACK body; raise ConnectRefused on codes 1-5."""
    if len(body) != 2 or body[0] & 0xFE:
        raise ProtocolError("malformed CONNACK body %r" % bytes(body))
    if body[1]:
        raise ConnectRefused(body[1])
    return bool(body[0] & 1)


def publish_header_size(topic, qos):
    """Upper bound of the PUBLISH header (fixed header + topic + packet id) for ``topic``."""
    return 5 + 2 + len(topic) + (2 if qos else 0)


def publish_header_into(buf, topic, payload_len, qos=0, retain=False, dup=False, pid=0):
    """Write a PUBLISH header (everything but the payload) into ``buf``; return its length.

    ``topic`` is bytes; ``buf`` needs ``publish_header_size(topic, qos)`` bytes.
    """
    if qos not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")
    if qos and not 1 <= pid <= 65535:
        raise ValueError("packet id %d outside 1..65535" % pid)
    if not topic or len(topic) > MAX_STRING or b"+" in topic or b"#" in topic:
        raise ValueError("cannot publish to %r: 1-65535 bytes, no wildcards" % topic)
    size = 2 + len(topic) + (2 if qos else 0) + payload_len
    buf[0] = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    off = _string_into(buf, remaining_length_into(buf, 1, size), topic)
    if qos:
        struct.pack_into(">H", buf, off, pid)
        off += 2
    return off


def publish_flags(first):
    """``(qos, retain, dup)`` from the first byte of a PUBLISH; ProtocolError on QoS 3."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    return qos, bool(first & 1), bool(first & 8)


def encode_puback(pid):
    return struct.pack(">BBH", PUBACK, 2, pid)


def parse_ack(body):
    """Packet id of a PUBACK or UNSUBACK body."""
    if len(body) != 2:
        raise ProtocolError("ack body of %d bytes, expected 2" % len(body))
    return (body[0] << 8) | body[1]


def encode_subscribe(pid, topic_filter, qos=1):
    """SUBSCRIBE to one filter with the requested maximum QoS."""
    if qos not in (0, 1, 2):
        raise ValueError("QoS must be 0, 1 or 2")
    if not 1 <= pid <= 65535:
        raise ValueError("packet id %d outside 1..65535" % pid)
    filt = _check_string(_b(topic_filter), "topic filter")
    if not filt:
        raise ValueError("empty topic filter")
    buf, off = _packet(SUBSCRIBE, 2 + 2 + len(filt) + 1)
    struct.pack_into(">H", buf, off, pid)
    off = _string_into(buf, off + 2, filt)
    buf[off] = qos
    return bytes(buf)


def parse_suback(body):
    """``(pid, [return codes])`` from a SUBACK body; 0x80 in the list means refused."""
    if len(body) < 3:
        raise ProtocolError("SUBACK body of %d bytes, expected 3 or more" % len(body))
    return (body[0] << 8) | body[1], list(body[2:])
