"""Modbus TCP / RTU frame vectors; runs under pytest and under MicroPython (tests/mpy_runner.py)."""

from edge.net import modbus_codec as codec


def _raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError(f"{exc_type.__name__} not raised")


def _h(text):
    return bytes(int(x, 16) for x in text.split())


def test_crc16_check_value():
    assert codec.crc16(b"123456789") == 0x4B37  # CRC-16/MODBUS catalogue check value


def test_rtu_read_holding_request_known_frame():
    frame = codec.rtu_frame(1, codec.read_request(codec.READ_HOLDING, 0, 10))
    assert frame == _h("01 03 00 00 00 0A C5 CD")


def test_rtu_exception_reply_known_frame():
    assert codec.rtu_frame(1, b"\x83\x02") == _h("01 83 02 C0 F1")


def test_rtu_parse_reply_and_registers():
    frame = _h("01 03 04 00 0A 01 02 5A 60")  # CRC as computed by pymodbus' FramerRTU
    unit, pdu = codec.parse_rtu_frame(frame)
    assert unit == 1
    assert codec.parse_read_reply(codec.READ_HOLDING, pdu, 2) == [10, 258]
    assert codec.rtu_reply_length(frame[:3]) == len(frame)


def test_rtu_bad_crc_is_a_protocol_error():
    frame = bytearray(_h("01 03 04 00 0A 01 02 5A 60"))
    frame[4] ^= 0x01
    _raises(codec.ModbusProtocolError, codec.parse_rtu_frame, bytes(frame))
    _raises(codec.ModbusProtocolError, codec.parse_rtu_frame, b"\x01\x03\x00")


def test_rtu_exception_reply_length_is_five():
    assert codec.rtu_reply_length(_h("01 83 02")) == 5


def test_mbap_request_bytes():
    frame = codec.mbap_frame(1, 1, codec.read_request(codec.READ_HOLDING, 0, 10))
    assert frame == _h("00 01 00 00 00 06 01 03 00 00 00 0A")
    frame = codec.mbap_frame(0x1234, 17, codec.read_request(codec.READ_INPUT, 0x6B, 3))
    assert frame == _h("12 34 00 00 00 06 11 04 00 6B 00 03")


def test_mbap_transaction_id_wraps_to_16_bits():
    assert codec.mbap_frame(65536 + 5, 1, b"\x03\x00\x00\x00\x01")[:2] == b"\x00\x05"


def test_mbap_header_parse():
    reply = _h("12 34 00 00 00 09 11 04 06 02 2B 00 00 00 64")
    tid, unit, flen = codec.parse_mbap_header(reply)
    assert (tid, unit, flen) == (0x1234, 17, len(reply))
    regs = codec.parse_read_reply(codec.READ_INPUT, reply[7:], 3)
    assert regs == [0x022B, 0, 100]


def test_mbap_header_bad_protocol_or_length_is_a_protocol_error():
    _raises(codec.ModbusProtocolError, codec.parse_mbap_header, _h("00 01 00 01 00 06 01"))
    _raises(codec.ModbusProtocolError, codec.parse_mbap_header, _h("00 01 00 00 00 01 01"))
    _raises(codec.ModbusProtocolError, codec.parse_mbap_header, _h("00 01 00 00 00 FF 01"))


def test_registers_are_unsigned_16_bit_big_endian():
    pdu = _h("03 06 FF FF 80 00 00 01")
    assert codec.parse_read_reply(codec.READ_HOLDING, pdu, 3) == [65535, 32768, 1]


def test_exception_reply_raises_with_standard_name():
    names = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
             4: "server device failure", 5: "acknowledge", 6: "server device busy",
             8: "memory parity error", 0x0A: "gateway path unavailable",
             0x0B: "gateway target device failed to respond"}
    for code, name in names.items():
        exc = _raises(codec.ModbusException, codec.parse_read_reply, 3, bytes((0x83, code)), 1)
        assert exc.code == code and exc.name == name
        assert name in str(exc)
        assert isinstance(exc, codec.ModbusError)


def test_reply_to_other_function_or_wrong_count_is_a_protocol_error():
    _raises(codec.ModbusProtocolError, codec.parse_read_reply, 3, _h("04 02 00 01"), 1)
    _raises(codec.ModbusProtocolError, codec.parse_read_reply, 3, _h("03 04 00 01 00 02"), 1)
    _raises(codec.ModbusProtocolError, codec.parse_read_reply, 3, _h("03 02 00"), 1)
    _raises(codec.ModbusProtocolError, codec.parse_read_reply, 3, _h("83 02 00"), 1)


def test_read_request_limits():
    assert len(codec.read_request(3, 0, 125)) == 5
    assert codec.read_request(4, 65535, 1) == _h("04 FF FF 00 01")
    _raises(ValueError, codec.read_request, 3, 0, 126)
    _raises(ValueError, codec.read_request, 3, 0, 0)
    _raises(ValueError, codec.read_request, 3, 65500, 50)
    _raises(ValueError, codec.read_request, 3, -1, 1)
    _raises(ValueError, codec.read_request, 6, 0, 1)


def test_longest_reply_fits_the_mbap_limits():
    pdu = bytes((3, 250)) + bytes(250)  # 125 registers
    frame = codec.mbap_frame(1, 1, pdu)
    assert codec.parse_mbap_header(frame)[2] == len(frame) == 259
    assert codec.parse_read_reply(3, frame[7:], 125) == [0] * 125
    longest = codec.mbap_frame(1, 1, bytes(codec.MAX_PDU))
    assert codec.parse_mbap_header(longest)[2] == len(longest) == 260
    _raises(ValueError, codec.mbap_frame, 1, 1, bytes(codec.MAX_PDU + 1))
