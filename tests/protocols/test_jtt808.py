"""JT/T 808 codec: frames written byte by byte from the standard's field tables.

Every expected frame below was written from the tables of JT/T 808-2013 / -2019 (header:
id, props, [version], BCD phone, serial; bodies per message), its check code computed
by hand; none comes from ``protocols.jtt808``'s own encoder. Runs under pytest and
MicroPython.
"""

from binascii import unhexlify

from protocols import jtt808
from shared_support import raises


def h(text):
    return unhexlify(text.replace(" ", ""))


# 0x0002 heartbeat, 2013 header, phone 013800138000, serial 1: check 0xA9
HEARTBEAT_2013 = h("7E 0002 0000 013800138000 0001 A9 7E")
# the same with serial 0x7E7D: both flag bytes escaped; check 0xA8^7E^7D = 0xAB
HEARTBEAT_ESCAPED = h("7E 0002 0000 013800138000 7D02 7D01 AB 7E")
# 2019 header: props bit 14, version 1, BCD[10] phone, serial 5; check 0xEC
HEARTBEAT_2019 = h("7E 0002 4000 01 00000000013800138000 0005 EC 7E")
# 0x0200 Dalian: alarm bit 8 (power cut), status ACC+fixed, 38.912345 N 121.612345 E,
# 12 m, 45.2 km/h, 271 deg, 2025-12-01 08:30:15 Beijing time; serial 42; check 0x22
LOCATION_BODY = h("00000100 00000003 0251C159 073FA839 000C 01C4 010F 251201083015")
LOCATION_2013 = h("7E 0200 001C 013800138000 002A") + LOCATION_BODY + h("22 7E")
LOCATION_TS = 1764549015000  # 2025-12-01 00:30:15 UTC
# south and west (Rio de Janeiro), status fixed+south+west, leap day 23:59:59 Beijing,
# one extra item 0x01 (mileage, 4 bytes)
SOUTH_WEST_BODY = h("00000000 0000000E 015D87B0 0292C424 0005 0000 0000 240229235959"
                    " 01 04 00003039")
SOUTH_WEST_TS = 1709222399000  # 2024-02-29 15:59:59 UTC


def test_frame_heartbeat_2013_decodes_from_the_table():
    frame = jtt808.decode_frame(HEARTBEAT_2013[1:-1])
    assert frame.msg_id == jtt808.HEARTBEAT
    assert frame.phone == "013800138000"
    assert frame.serial == 1
    assert frame.version is None and frame.packages is None
    assert frame.body == b""


def test_frame_heartbeat_2013_encodes_to_the_table():
    assert jtt808.encode_frame(0x0002, "13800138000", 1, b"") == HEARTBEAT_2013


def test_frame_escapes_flag_and_escape_bytes_both_ways():
    assert jtt808.encode_frame(0x0002, "013800138000", 0x7E7D, b"") == HEARTBEAT_ESCAPED
    frame = jtt808.decode_frame(HEARTBEAT_ESCAPED[1:-1])
    assert frame.serial == 0x7E7D
    assert jtt808.escape(b"\x7e\x7d\x30") == b"\x7d\x02\x7d\x01\x30"
    assert jtt808.unescape(b"\x7d\x02\x7d\x01\x30") == b"\x7e\x7d\x30"


def test_frame_2019_header_carries_version_and_ten_bcd_bytes():
    frame = jtt808.decode_frame(HEARTBEAT_2019[1:-1])
    assert frame.version == 1
    assert frame.phone == "00000000013800138000"
    assert frame.serial == 5
    assert jtt808.normal_phone(frame.phone) == "13800138000"
    assert jtt808.encode_frame(0x0002, "13800138000", 5, b"", version=1) == HEARTBEAT_2019


def test_frame_subpackage_fields_are_read_after_the_serial():
    raw = h("0704 2005 013800138000 0009 0003 0001 0001 01 AABB")
    # body length 5 with bit 13 set; the check is the XOR of all of raw
    check = 0
    for b in raw:
        check ^= b
    frame = jtt808.decode_frame(raw + bytes((check,)))
    assert frame.packages == (3, 1)
    assert frame.body == h("0001 01 AABB")


def test_frame_bad_check_escape_length_and_encryption_are_named():
    assert raises(jtt808.JT808Error, jtt808.decode_frame,
                  h("0002 0000 013800138000 0001 AA")).reason == "bad_check"
    assert raises(jtt808.JT808Error, jtt808.decode_frame,
                  h("0002 0000 013800138000 7D03 A9")).reason == "bad_escape"
    assert raises(jtt808.JT808Error, jtt808.decode_frame, h("0002 0000 0138")).reason \
        == "too_short"
    # props say 1 body byte, none follows: check 0xA9 ^ 0x01 = 0xA8
    assert raises(jtt808.JT808Error, jtt808.decode_frame,
                  h("0002 0001 013800138000 0001 A8")).reason == "bad_length"
    # props encryption bit 10 (RSA): 0xA9 ^ 0x04 = 0xAD
    assert raises(jtt808.JT808Error, jtt808.decode_frame,
                  h("0002 0400 013800138000 0001 AD")).reason == "encrypted"


def test_location_north_east_decodes_from_the_table():
    frame = jtt808.decode_frame(LOCATION_2013[1:-1])
    assert frame.msg_id == jtt808.LOCATION and frame.serial == 42
    loc = jtt808.decode_location(frame.body)
    assert loc["alarm"] == jtt808.ALARM_POWER_CUT
    assert loc["status"] & jtt808.STATUS_ACC and loc["status"] & jtt808.STATUS_FIXED
    assert loc["lat_e6"] == 38912345 and loc["lon_e6"] == 121612345
    assert loc["alt_m"] == 12 and loc["speed_dkmh"] == 452 and loc["course"] == 271
    assert loc["time"] == "251201083015"
    assert loc["ts_ms"] == LOCATION_TS
    assert loc["extras"] == []


def test_location_north_east_encodes_to_the_table():
    body = jtt808.encode_location({"alarm": 0x100, "status": 3, "lat_e6": 38912345,
                                   "lon_e6": 121612345, "alt_m": 12, "speed_dkmh": 452,
                                   "course": 271, "ts_ms": LOCATION_TS})
    assert body == LOCATION_BODY
    assert jtt808.encode_frame(0x0200, "013800138000", 42, body) == LOCATION_2013


def test_location_south_west_gives_negative_coordinates_and_keeps_extras():
    loc = jtt808.decode_location(SOUTH_WEST_BODY)
    assert loc["lat_e6"] == -22906800 and loc["lon_e6"] == -43172900
    assert loc["ts_ms"] == SOUTH_WEST_TS
    assert loc["extras"] == [(1, h("00003039"))]
    again = jtt808.encode_location({"alarm": 0, "status": jtt808.STATUS_FIXED,
                                    "lat_e6": -22906800, "lon_e6": -43172900, "alt_m": 5,
                                    "speed_dkmh": 0, "course": 0, "ts_ms": SOUTH_WEST_TS,
                                    "extras": [(1, h("00003039"))]})
    assert again == SOUTH_WEST_BODY


def test_location_bad_time_range_and_extras_are_bad_body():
    bad_time = LOCATION_BODY[:22] + h("251301083015")  # month 13
    assert raises(jtt808.JT808Error, jtt808.decode_location, bad_time).reason == "bad_body"
    not_bcd = LOCATION_BODY[:22] + h("2512010830FF")
    assert raises(jtt808.JT808Error, jtt808.decode_location, not_bcd).reason == "bad_body"
    no_leap = LOCATION_BODY[:22] + h("250229000000")
    assert raises(jtt808.JT808Error, jtt808.decode_location, no_leap).reason == "bad_body"
    lat_91 = LOCATION_BODY[:8] + h("056C8F60") + LOCATION_BODY[12:]  # 91,000,000
    assert raises(jtt808.JT808Error, jtt808.decode_location, lat_91).reason == "bad_body"
    torn_extra = LOCATION_BODY + h("01 04 0000")
    assert raises(jtt808.JT808Error, jtt808.decode_location, torn_extra).reason == "bad_body"
    assert raises(jtt808.JT808Error, jtt808.decode_location, LOCATION_BODY[:27]).reason \
        == "bad_body"


def test_time_round_trips_through_beijing_time():
    for ts in (946656000000, LOCATION_TS, SOUTH_WEST_TS, 4102415999000):
        assert jtt808.time_to_ms(jtt808.ms_to_time(ts)) == ts
    # midnight UTC on 2026-12-01 is 08:00 in Beijing
    assert jtt808.ms_to_time(1796083200000) == h("261201080000")


def test_batch_blind_area_decodes_items_and_keeps_a_bad_one_as_its_error():
    body = (h("0003 01") + h("001C") + LOCATION_BODY + h("0022") + SOUTH_WEST_BODY
            + h("0004 DEADBEEF"))
    kind, items = jtt808.decode_batch(body)
    assert kind == jtt808.BATCH_BLIND_AREA
    assert items[0]["lat_e6"] == 38912345 and items[1]["lon_e6"] == -43172900
    assert isinstance(items[2], jtt808.JT808Error) and items[2].reason == "bad_body"
    assert jtt808.encode_batch([LOCATION_BODY, SOUTH_WEST_BODY], 1) == (
        h("0002 01 001C") + LOCATION_BODY + h("0022") + SOUTH_WEST_BODY)


def test_batch_wrong_count_or_type_is_bad_body():
    assert raises(jtt808.JT808Error, jtt808.decode_batch,
                  h("0002 00 001C") + LOCATION_BODY).reason == "bad_body"
    assert raises(jtt808.JT808Error, jtt808.decode_batch,
                  h("0001 07 001C") + LOCATION_BODY).reason == "bad_body"
    assert raises(jtt808.JT808Error, jtt808.decode_batch,
                  h("0001 00 001C") + LOCATION_BODY + h("00")).reason == "bad_body"


# 0x0100 (2013): province 21 (Liaoning), city 0x00C8, maker "PWEMU" BYTE[5], model
# "PW-808" BYTE[20], terminal id "T000001" BYTE[7], colour 2 (yellow), plate GBK 辽B12345
REGISTER_2013 = (h("0015 00C8") + b"PWEMU" + b"PW-808" + b"\x00" * 14 + b"T000001"
                 + h("02") + h("C1C9 42 3132333435"))


def test_register_2013_decodes_from_the_table_with_plate_bytes_raw():
    reg = jtt808.decode_register(REGISTER_2013)
    assert reg["province"] == 21 and reg["city"] == 200
    assert reg["maker"] == b"PWEMU" and reg["model"] == b"PW-808"
    assert reg["terminal_id"] == b"T000001" and reg["plate_color"] == 2
    assert reg["plate"] == h("C1C9423132333435")
    assert jtt808.encode_register({"province": 21, "city": 200, "maker": "PWEMU",
                                   "model": "PW-808", "terminal_id": "T000001",
                                   "plate_color": 2, "plate": h("C1C9423132333435")}) \
        == REGISTER_2013


def test_register_2019_uses_longer_fixed_fields():
    body = (h("0015 00C8") + b"PWEMU" + b"\x00" * 6 + b"PW-808" + b"\x00" * 24 + b"T000001"
            + b"\x00" * 23 + h("02") + h("C1C9 42 3132333435"))
    reg = jtt808.decode_register(body, version=1)
    assert reg["maker"] == b"PWEMU" and reg["terminal_id"] == b"T000001"
    assert reg["plate"] == h("C1C9423132333435")
    assert raises(jtt808.JT808Error, jtt808.decode_register, body[:40], 1).reason == "bad_body"


def test_register_answer_and_general_answers_follow_the_tables():
    assert jtt808.encode_register_answer(1, 0, b"A1B2") == h("0001 00 41314232")
    assert jtt808.encode_register_answer(1, jtt808.REG_NO_TERMINAL, b"x") == h("0001 04")
    assert jtt808.decode_register_answer(h("0007 00 41314232")) == {
        "answer_serial": 7, "result": 0, "auth_code": b"A1B2"}
    assert jtt808.encode_answer(42, 0x0200, jtt808.OK) == h("002A 0200 00")
    assert jtt808.decode_answer(h("002A 0704 04")) == {
        "answer_serial": 42, "answer_id": 0x0704, "result": 4}
    assert raises(jtt808.JT808Error, jtt808.decode_answer, h("002A 02")).reason == "bad_body"


def test_auth_2013_is_the_code_and_2019_is_length_prefixed_with_imei():
    assert jtt808.decode_auth(b"A1B2") == {"auth_code": b"A1B2"}
    body = h("04") + b"A1B2" + b"860000000000001" + b"1.0.0" + b"\x00" * 15
    assert jtt808.encode_auth(b"A1B2", 1, b"860000000000001", b"1.0.0") == body
    auth = jtt808.decode_auth(body, 1)
    assert auth["auth_code"] == b"A1B2" and auth["imei"] == b"860000000000001"
    assert auth["software"] == b"1.0.0"


def test_splitter_torn_frames_byte_by_byte_come_out_whole():
    splitter = jtt808.Splitter()
    got = []
    for b in LOCATION_2013 + HEARTBEAT_ESCAPED + HEARTBEAT_2019:
        got += splitter.feed(bytes((b,)))
    assert [f.msg_id for f in got] == [0x0200, 0x0002, 0x0002]
    assert got[1].serial == 0x7E7D and got[2].version == 1
    assert splitter.errors == {} and splitter.pending() == 0


def test_splitter_garbage_before_and_between_frames_is_counted_and_skipped():
    splitter = jtt808.Splitter()
    got = splitter.feed(b"AT+OK\r\n" + HEARTBEAT_2013 + b"\x00\x01" + LOCATION_2013)
    errors = [g for g in got if isinstance(g, jtt808.JT808Error)]
    frames = [g for g in got if isinstance(g, jtt808.Frame)]
    assert [e.reason for e in errors] == ["garbage", "garbage"]
    assert [f.msg_id for f in frames] == [0x0002, 0x0200]
    assert splitter.errors == {"garbage": 2} and splitter.dropped_bytes == 9


def test_splitter_garbage_holding_a_flag_does_not_swallow_the_next_frame():
    splitter = jtt808.Splitter()
    got = splitter.feed(b"\x11\x7e\x22\x33" + HEARTBEAT_2013)
    frames = [g for g in got if isinstance(g, jtt808.Frame)]
    assert len(frames) == 1 and frames[0].serial == 1
    assert splitter.errors == {"garbage": 1, "too_short": 1}


def test_splitter_bad_check_and_bad_escape_frames_are_errors_then_it_goes_on():
    bad_check = HEARTBEAT_2013[:-2] + h("00 7E")
    bad_escape = h("7E 0002 0000 013800138000 7D05 A9 7E")
    splitter = jtt808.Splitter()
    got = splitter.feed(bad_check + bad_escape + HEARTBEAT_2013)
    assert [g.reason for g in got if isinstance(g, jtt808.JT808Error)] == [
        "bad_check", "bad_escape"]
    assert [g.serial for g in got if isinstance(g, jtt808.Frame)] == [1]
    assert splitter.frames == 1


def test_splitter_too_long_frame_is_dropped_once_and_the_next_is_read():
    splitter = jtt808.Splitter(max_escaped=64)
    got = splitter.feed(b"\x7e" + b"\x01" * 500)
    got += splitter.feed(b"\x02" * 100 + HEARTBEAT_2013)
    assert [g.reason for g in got if isinstance(g, jtt808.JT808Error)] == ["too_long"]
    assert [g.serial for g in got if isinstance(g, jtt808.Frame)] == [1]
    assert splitter.pending() == 0


def test_bcd_and_phone_helpers_refuse_what_is_not_digits():
    assert jtt808.bcd("13800138000", 6) == h("013800138000")
    assert raises(jtt808.JT808Error, jtt808.bcd, "12a", 6).reason == "bad_body"
    assert raises(jtt808.JT808Error, jtt808.bcd, "1" * 13, 6).reason == "bad_body"
    assert jtt808.normal_phone("000000000000") == "0"
