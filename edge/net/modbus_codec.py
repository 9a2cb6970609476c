"""Modbus frames as bytes: the pure half of the firmware's Modbus master (no I/O).

Covers what the agents read: function 03 (read holding registers) and 04 (read
input registers), framed for Modbus TCP (7-byte MBAP header: transaction id,
protocol id 0, length, unit id) and for Modbus RTU over a serial line (unit id,
PDU, CRC-16 with polynomial 0xA001 and initial value 0xFFFF, sent low byte first).
The UART itself sits behind the HAL; this module only builds and checks frames.

Limits (Modbus Application Protocol v1.1b3): at most 125 registers per read,
addresses 0-65535 and ``address + count <= 65536``; a PDU is at most 253 bytes, so an
MBAP length field is 2-254 and an RTU frame 4-256 bytes. An exception reply is the
function code | 0x80 plus one code, raised here as ``ModbusException(code)``.
The exception hierarchy (root ``ModbusError``) lives here so that frame errors and
link errors share it. Runs unchanged under MicroPython and CPython.
"""

import struct

READ_HOLDING = 3
READ_INPUT = 4
MAX_REGISTERS = 125
MAX_PDU = 253
MBAP_HEADER = 7

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


class ModbusError(Exception):
    """Root of every error raised by the firmware's Modbus master and codec."""


class ModbusException(ModbusError):
    """The device answered with an exception code (01-06, 08, 0A, 0B)."""

    def __init__(self, code, detail=""):
        name = EXCEPTION_NAMES.get(code, "unknown exception")
        msg = "modbus exception %02X: %s" % (code, name)
        super().__init__(msg + ("; " + detail if detail else ""))
        self.code = code
        self.name = name


class ModbusProtocolError(ModbusError):
    """A frame is malformed: bad CRC, bad length, or a reply that does not fit the request."""


class ModbusTimeout(ModbusError):
    """No reply within the master's timeout; the device is off, busy or the link is broken."""


class ModbusConnectionError(ModbusError):
    """The TCP connection could not be opened or broke; the next call opens a new one."""


def crc16(data, crc=0xFFFF):
    """CRC-16/MODBUS of ``data`` (bytes-like); ``crc16(b"123456789") == 0x4B37``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def read_request(function, address, count):
    """The 5-byte PDU of a read holding (3) / read input (4) registers request."""
    if function not in (READ_HOLDING, READ_INPUT):
        raise ValueError("function %r: only 3 (holding) and 4 (input) are read" % function)
    if not 1 <= count <= MAX_REGISTERS:
        raise ValueError("count %r outside 1..%d registers per read" % (count, MAX_REGISTERS))
    if not 0 <= address <= 0xFFFF or address + count > 0x10000:
        raise ValueError("registers %r..%r outside 0..65535" % (address, address + count - 1))
    return struct.pack(">BHH", function, address, count)


def parse_read_reply(function, pdu, count):
    """Registers (list of ints 0-65535) from the reply PDU to a read of ``count``.

    Raises ModbusException for an exception reply, ModbusProtocolError when the
    PDU does not answer this request.
    """
    if len(pdu) < 2:
        raise ModbusProtocolError("reply PDU of %d bytes" % len(pdu))
    if pdu[0] == function | 0x80:
        if len(pdu) != 2:
            raise ModbusProtocolError("exception reply of %d bytes, expected 2" % len(pdu))
        raise ModbusException(pdu[1])
    if pdu[0] != function:
        raise ModbusProtocolError("reply to function %d answers function %d"
                                  % (function, pdu[0]))
    if pdu[1] != 2 * count or len(pdu) != 2 + 2 * count:
        raise ModbusProtocolError("expected %d registers, reply carries byte count %d in %d bytes"
                                  % (count, pdu[1], len(pdu)))
    return [(pdu[i] << 8) | pdu[i + 1] for i in range(2, 2 + 2 * count, 2)]


def mbap_frame(tid, unit, pdu):
    """A Modbus TCP ADU: MBAP header (protocol id 0) followed by ``pdu``."""
    if not 1 <= len(pdu) <= MAX_PDU:
        raise ValueError("PDU of %d bytes outside 1..%d" % (len(pdu), MAX_PDU))
    return struct.pack(">HHHB", tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def parse_mbap_header(buf):
    """``(tid, unit, frame length)`` from the first 7 bytes of ``buf``.

    Frame length counts the whole ADU (header + PDU). Raises ModbusProtocolError
    for a protocol id other than 0 or a length outside 2..254: the byte stream can
    no longer be trusted and the connection must be reset.
    """
    tid, proto, length, unit = struct.unpack_from(">HHHB", buf, 0)
    if proto != 0 or not 2 <= length <= MAX_PDU + 1:
        raise ModbusProtocolError("bad MBAP header: protocol %d, length %d" % (proto, length))
    return tid, unit, 6 + length


def rtu_frame(unit, pdu):
    """A Modbus RTU frame: unit id, ``pdu``, CRC-16 low byte first."""
    body = bytes((unit,)) + pdu
    return body + struct.pack("<H", crc16(body))


def parse_rtu_frame(frame):
    """``(unit, pdu)`` from an RTU frame; ModbusProtocolError on a short frame or bad CRC."""
    if len(frame) < 4:
        raise ModbusProtocolError("RTU frame of %d bytes, minimum is 4" % len(frame))
    mv = memoryview(frame)
    want = crc16(mv[:-2])
    got = frame[-2] | (frame[-1] << 8)
    if want != got:
        raise ModbusProtocolError("RTU CRC %04X, computed %04X" % (got, want))
    return frame[0], bytes(mv[1:-2])


def rtu_reply_length(head):
    """Total length of an RTU reply to a read, known from its first 3 bytes.

    Lets a serial driver read exactly one frame: 5 bytes for an exception reply,
    else unit + function + byte count + data + CRC.
    """
    if head[1] & 0x80:
        return 5
    return 3 + head[2] + 2
