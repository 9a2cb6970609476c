"""Modbus PDU and RTU frame vectors; runs under pytest and under MicroPython (tests/mpy_runner.py).

The MBAP (Modbus TCP) header is built and checked inside the master: its vectors are in
tests/edge/test_modbus_master.py, against the bytes a scripted server receives and sends.
"""

from edge.net import modbus_codec as codec
from edge.net import modbus_rtu as rtu
from shared_support import hexbytes as _h
from shared_support import raises as _raises


def test_crc16_check_value():
    assert rtu.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value


def test_rtu_read_holding_request_known_frame():
    frame = rtu.rtu_frame(1, codec.read_request(codec.READ_HOLDING, 0, 10))
    assert frame == _h("01 03 00 00 00 0A C5 CD")


def test_rtu_exception_reply_known_frame():
    assert rtu.rtu_frame(1, b"\x83\x02") == _h("01 83 02 C0 F1")


def test_rtu_parse_reply_and_registers():
    frame = _h("01 03 04 00 0A 01 02 5A 60")  # CRC as computed by pymodbus' FramerRTU
    unit, pdu = rtu.parse_rtu_frame(frame)
    assert unit == 1
    assert codec.parse_read_reply(codec.READ_HOLDING, pdu, 2) == [10, 258]
    assert rtu.rtu_reply_length(frame[:3]) == len(frame)


def test_rtu_bad_crc_or_short_frame_is_a_modbus_error():
    frame = bytearray(_h("01 03 04 00 0A 01 02 5A 60"))
    for i in range(len(frame)):
        frame[i] ^= 0x01
        exc = _raises(codec.ModbusError, rtu.parse_rtu_frame, bytes(frame))
        assert "CRC" in str(exc), i
        frame[i] ^= 0x01
    assert "minimum is 4" in str(_raises(codec.ModbusError, rtu.parse_rtu_frame, b"\x01\x03\x00"))


def test_rtu_exception_reply_length_is_five():
    assert rtu.rtu_reply_length(_h("01 83 02")) == 5


def test_registers_are_unsigned_16_bit_big_endian():
    pdu = _h("03 06 FF FF 80 00 00 01")
    assert codec.parse_read_reply(codec.READ_HOLDING, pdu, 3) == [65535, 32768, 1]


def test_exception_reply_raises_with_its_code_and_function():
    for code in (1, 2, 3, 4, 5, 6, 8, 0x0A, 0x0B, 0x7F):
        for fn in (3, 4):
            exc = _raises(codec.ModbusException, codec.parse_read_reply, fn,
                          bytes((0x80 | fn, code)), 1)
            assert exc.code == code
            assert str(exc) == "modbus exception %02X to function %02X" % (code, fn)
            assert isinstance(exc, codec.ModbusError)
    assert codec.ModbusException(6).code == 6  # as drivers and their tests build it


def test_exception_names_are_the_standard_ones():
    assert rtu.EXCEPTION_NAMES == {
        1: "illegal function", 2: "illegal data address", 3: "illegal data value",
        4: "server device failure", 5: "acknowledge", 6: "server device busy",
        8: "memory parity error", 0x0A: "gateway path unavailable",
        0x0B: "gateway target device failed to respond"}


def test_reply_to_other_function_or_wrong_count_is_a_modbus_error():
    for bad in ("04 02 00 01", "03 04 00 01 00 02", "03 02 00", "03 02 00 01 00", "83 02 00",
                "84 02", "83", "03", ""):
        exc = _raises(codec.ModbusError, codec.parse_read_reply, 3, _h(bad), 1)
        assert not isinstance(exc, codec.ModbusException), bad
        assert exc.args == ("bad reply", 3, 1, _h(bad)[:4]), bad


def test_read_request_bytes_and_limits():
    assert codec.read_request(codec.READ_HOLDING, 0, 10) == _h("03 00 00 00 0A")
    assert codec.read_request(codec.READ_INPUT, 0x6B, 3) == _h("04 00 6B 00 03")
    assert codec.read_request(3, 0, 125) == _h("03 00 00 00 7D")
    assert codec.read_request(4, 65535, 1) == _h("04 FF FF 00 01")
    assert codec.read_request(3, 65411, 125) == _h("03 FF 83 00 7D")  # up to 65535 exactly
    _raises(ValueError, codec.read_request, 3, 0, 126)
    _raises(ValueError, codec.read_request, 3, 0, 0)
    _raises(ValueError, codec.read_request, 3, 65500, 50)
    _raises(ValueError, codec.read_request, 3, -1, 1)
    _raises(ValueError, codec.read_request, 6, 0, 1)
    exc = _raises(ValueError, codec.read_request, 3, 0, 126)
    assert exc.args == ("bad read", 3, 126, 0)


def test_longest_reply_125_registers():
    pdu = bytes((3, 250)) + bytes(range(250))
    regs = codec.parse_read_reply(3, pdu, 125)
    assert len(regs) == 125
    assert regs[0] == 0x0001 and regs[124] == (248 << 8 | 249)


def test_write_coil_request_bytes_and_limits():
    # the Modbus Application Protocol's example: coil 173 (address 0xAC) on
    assert codec.coil_request(0xAC, True) == _h("05 00 AC FF 00")
    assert codec.coil_request(0, False) == _h("05 00 00 00 00")
    assert codec.coil_request(65535, True) == _h("05 FF FF FF 00")
    for bad in (-1, 65536):
        assert _raises(ValueError, codec.coil_request, bad, True).args == ("bad coil", bad)


def test_write_reply_must_echo_the_request():
    request = codec.coil_request(0xAC, True)
    assert codec.parse_write_reply(request, _h("05 00 AC FF 00")) is None
    assert codec.parse_write_reply(request, bytearray(_h("05 00 AC FF 00"))) is None
    for bad in ("05 00 AC 00 00", "05 00 AD FF 00", "05 00 AC FF", "05 00 AC FF 00 00",
                "03 00 AC FF 00", "85", ""):
        exc = _raises(codec.ModbusError, codec.parse_write_reply, request, _h(bad))
        assert not isinstance(exc, codec.ModbusException), bad
        assert exc.args == ("bad reply", 5, 0, _h(bad)[:4]), bad
    exc = _raises(codec.ModbusException, codec.parse_write_reply, request, _h("85 04"))
    assert exc.code == 4 and str(exc) == "modbus exception 04 to function 05"
