"""Modbus RTU framing over a serial line (unit id, PDU, CRC-16), and the exception names.

CRC-16/MODBUS: polynomial 0xA001 (reflected 0x8005), initial value 0xFFFF, sent low
byte first; an RTU frame is 4-256 bytes. The PDUs themselves (read requests, replies,
exception replies) are those of edge/net/modbus_codec.py, and so are the exceptions
(a short frame or a bad CRC raises ``ModbusError``). No I/O: the UART sits behind the HAL.

Kept out of the TCP master's imports: the agent's weighbridge talks Modbus TCP, and on
the device every module loaded costs heap. So the standard names of the exception codes
live here too, for logs and tools (the master raises ``ModbusException`` with the code).
Runs under MicroPython and CPython.
"""

import struct

from edge.net.modbus_codec import ModbusError

EXCEPTION_NAMES = {
    0x01: "illegal function",
    0x02: "illegal data address",
    0x03: "illegal data value",
    0x04: "server device failure",
    0x05: "acknowledge",
    0x06: "server device busy",
    0x08: "memory parity error",
    0x0A: "gateway path unavailable",
    0x0B: "gateway target device failed to respond",
}


def crc16(data, crc=0xFFFF):
    """CRC-16/MODBUS of ``data`` (bytes-like); ``crc16(b"123456789") == 0x4B37``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def rtu_frame(unit, pdu):
    """A Modbus RTU frame: unit id, ``pdu``, CRC-16 low byte first."""
    body = bytes((unit,)) + pdu
    return body + struct.pack("<H", crc16(body))


def parse_rtu_frame(frame):
    """``(unit, pdu)`` from an RTU frame; ModbusError on a short frame or a bad CRC."""
    if len(frame) < 4:
        raise ModbusError("RTU frame of %d bytes, minimum is 4" % len(frame))
    mv = memoryview(frame)
    want = crc16(mv[:-2])
    got = frame[-2] | (frame[-1] << 8)
    if want != got:
        raise ModbusError("RTU CRC %04X, computed %04X" % (got, want))
    return frame[0], bytes(mv[1:-2])


def rtu_reply_length(head):
    """Total length of an RTU reply to a read, known from its first 3 bytes.

    Lets a serial driver read exactly one frame: 5 bytes for an exception reply,
    else unit + function + byte count + data + CRC.
    """
    if head[1] & 0x80:
        return 5
    return 3 + head[2] + 2
