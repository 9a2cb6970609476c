"""Modbus PDUs as bytes and the Modbus exceptions: the pure half of the firmware's master.

Covers what the agents read and the one thing they write: the PDUs of function 03 (read
holding registers), 04 (read input registers) and 05 (write single coil: a relay output
such as a gate's barrier), requests and replies, shared by both framings (no I/O).
Modbus TCP puts a 7-byte MBAP header in front (transaction id, protocol id 0, length,
unit id), built and checked by the master in edge/net/modbus.py. Modbus RTU framing,
its CRC-16 and the names of the exception codes live in edge/net/modbus_rtu.py, which
the TCP master never imports: on the device every module, function, class and string
loaded costs heap (docs/ARCHITECTURE.md, Edge runtime rules: 96 KiB for code and data).

Limits (Modbus Application Protocol v1.1b3): at most 125 registers per read,
addresses 0-65535 and ``address + count <= 65536``; a PDU is at most 253 bytes. An
exception reply is the function code | 0x80 plus one code, raised here as
``ModbusException(code, function)``.

Exceptions, three classes (each costs ~200 B of heap): ``ModbusError``, the root, is
raised itself for a broken link (refused, reset, closed by the peer) and for a
malformed frame (bad MBAP header, bad CRC, a reply that does not fit the request);
``ModbusException`` (the device said no: ``.code``); ``ModbusTimeout``.
Runs unchanged under MicroPython and CPython.
"""

import struct

READ_HOLDING = 3
READ_INPUT = 4


class ModbusError(Exception):
    """Root of the Modbus errors; raised itself for a broken link or a malformed frame."""


class ModbusException(ModbusError):
    """The device answered with exception ``.code`` (01-06, 08, 0A, 0B; names: modbus_rtu)."""

    def __init__(self, code, function=0):
        self.code = code
        super().__init__("modbus exception %02X to function %02X" % (code, function))


class ModbusTimeout(ModbusError):
    """No reply within the master's timeout; the device is off, busy or the link is broken."""


def read_request(function, address, count):
    """The 5-byte PDU of a read holding (3) / read input (4) registers request.

    ``ValueError("bad read", function, count, address)`` for another function, ``count``
    outside 1..125 or registers past 65535.
    """
    if function not in (3, 4) or not 0 < count < 126 or not 0 <= address <= 0x10000 - count:
        raise ValueError("bad read", function, count, address)
    return struct.pack(">BHH", function, address, count)


def coil_request(address, on):
    """The 5-byte PDU of a write single coil (05) request: 0xFF00 switches it on, 0 off.

    ``ValueError("bad coil", address)`` outside 0..65535.
    """
    if not 0 <= address <= 0xFFFF:
        raise ValueError("bad coil", address)
    return struct.pack(">BHH", 5, address, 0xFF00 if on else 0)


def parse_write_reply(request, pdu):
    """Check the reply PDU to a write ``request``: a normal reply echoes it byte for byte.

    Raises ModbusException for an exception reply, ``ModbusError("bad reply", function,
    0, first 4 bytes)`` for anything else that is not the echo.
    """
    if len(pdu) == 2 and pdu[0] == request[0] | 0x80:
        raise ModbusException(pdu[1], request[0])
    if pdu != request:
        raise ModbusError("bad reply", request[0], 0, pdu[:4])


def parse_read_reply(function, pdu, count):
    """Registers (list of ints 0-65535) from the reply PDU to a read of ``count``.

    Raises ModbusException for an exception reply, ``ModbusError("bad reply", function,
    count, first 4 bytes)`` when the PDU does not answer this request.
    """
    n = len(pdu)
    if n == 2 and pdu[0] == function | 0x80:
        raise ModbusException(pdu[1], function)
    if n < 2 or pdu[0] != function or pdu[1] != 2 * count or n != 2 + 2 * count:
        raise ModbusError("bad reply", function, count, pdu[:4])
    return list(struct.unpack(">%dH" % count, pdu[2:]))
