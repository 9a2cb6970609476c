"""Register map codec tests; run under pytest and MicroPython (plain asserts only).

Register values are written out by hand from the data sheets' arithmetic (e.g. 45.12 as
an IEEE 754 float32 is 0x42347AE1), so the codec is checked against known words, not
only against itself.
"""

from protocols import registermap as rm

_ALL_BITS = ("stable", "motion", "zero", "overload", "setup", "remote_cal", "net_mode")
_ALL_POSITION = ("entry_blocked", "exit_blocked", "deck_left_blocked", "deck_right_blocked")


def _one_field_map(field):
    field = dict(field)
    field["addr"] = 0
    return {"model": "t", "function": 3, "start": 0, "count": rm.width(field),
            "fields": {"v": field}}


def _codec(field_type, **extra):
    field = {"type": field_type}
    for key in extra:
        field[key] = extra[key]
    regmap = _one_field_map(field)
    rm.validate(regmap)
    return regmap


def _raises(fn, *args):
    """Call fn(*args), return the RegisterMapError message; fail if it did not raise."""
    try:
        fn(*args)
    except rm.RegisterMapError as exc:
        return str(exc)
    raise AssertionError("no RegisterMapError from " + repr(fn) + repr(args))


def _check_exact(regmap, value, words):
    assert rm.encode(regmap, {"v": value}) == words, (value, rm.encode(regmap, {"v": value}))
    decoded = rm.decode(regmap, words)["v"]
    assert decoded == value, (words, decoded)


def test_int32_big_endian_puts_most_significant_word_first():
    regmap = _codec("int32", word_order="big")
    _check_exact(regmap, 45230, [0, 45230])
    _check_exact(regmap, 100000, [0x0001, 0x86A0])
    _check_exact(regmap, -5, [0xFFFF, 0xFFFB])
    _check_exact(regmap, -2147483648, [0x8000, 0x0000])


def test_int32_little_word_order_puts_least_significant_word_first():
    regmap = _codec("int32", word_order="little")
    _check_exact(regmap, 45230, [45230, 0])
    _check_exact(regmap, 100000, [0x86A0, 0x0001])
    _check_exact(regmap, -5, [0xFFFB, 0xFFFF])


def test_word_order_defaults_to_big():
    _check_exact(_codec("uint32"), 0xDEADBEEF, [0xDEAD, 0xBEEF])


def test_uint32_little_and_16_bit_types_round_trip_exact_words():
    _check_exact(_codec("uint32", word_order="little"), 0xDEADBEEF, [0xBEEF, 0xDEAD])
    _check_exact(_codec("uint16"), 65535, [65535])
    _check_exact(_codec("int16"), -2, [0xFFFE])
    _check_exact(_codec("int16"), 32767, [0x7FFF])


def test_float32_words_in_both_orders():
    _check_exact(_codec("float32"), 1.5, [0x3FC0, 0x0000])
    _check_exact(_codec("float32", word_order="little"), 1.5, [0x0000, 0x3FC0])
    _check_exact(_codec("float32", word_order="little"), -2.0, [0x0000, 0xC000])


def test_float32_tonnes_scaled_to_exact_kilograms():
    regmap = _codec("float32", word_order="little", scale=1000, decimals=0)
    # 45.12 t is float32 0x42347AE1, i.e. 45.119998931884766: it must come back as 45120 kg
    _check_exact(regmap, 45120, [0x7AE1, 0x4234])
    value = rm.decode(regmap, [0x7AE1, 0x4234])["v"]
    assert isinstance(value, int)


def test_float32_without_decimals_recovers_the_displayed_decimal():
    regmap = _codec("float32", scale=1000)
    assert rm.decode(regmap, [0x4234, 0x7AE1])["v"] == 45120.0
    assert rm.decode(_codec("float32"), [0x4234, 0x7AE1])["v"] == 45.12


def test_float32_nan_decodes_to_none():
    assert rm.decode(_codec("float32"), [0x7FC0, 0x0000])["v"] is None
    assert rm.decode(_codec("float32"), [0x7F80, 0x0000])["v"] is None


def test_integer_scale_tenths_gives_float_with_one_decimal():
    regmap = _codec("int32", scale=0.1)
    _check_exact(regmap, 45123.4, [0x0006, 0xE2A2])  # raw 451234
    _check_exact(regmap, -0.5, [0xFFFF, 0xFFFB])


def test_integer_scale_ten_gives_int_kilograms():
    regmap = _codec("uint16", scale=10)
    _check_exact(regmap, 45120, [4512])
    assert isinstance(rm.decode(regmap, [4512])["v"], int)


def test_explicit_decimals_round_the_result():
    regmap = _codec("int32", scale=0.01, decimals=1)
    assert rm.decode(regmap, [0, 12346])["v"] == 123.5
    assert rm.decode(regmap, [0, 12300])["v"] == 123.0


def test_bits_decode_to_named_booleans_and_encode_back():
    regmap = _codec("bits", bits={"stable": 0, "motion": 1, "net_mode": 6, "setup": 15})
    words = rm.encode(regmap, {"v": {"stable": True, "net_mode": True}})
    assert words == [0x0041]
    assert rm.decode(regmap, [0x8002])["v"] == {
        "stable": False, "motion": True, "net_mode": False, "setup": True}
    assert rm.encode(regmap, {"v": 0x8001}) == [0x8001]  # a raw word is accepted too


def test_utf8_chinese_plate_round_trips_in_exact_words():
    regmap = _codec("str", words=10)
    # 辽 is E8 BE BD in UTF-8; bytes pack two per register, first byte high, NUL padded
    _check_exact(regmap, "辽B12345", [0xE8BE, 0xBD42, 0x3132, 0x3334, 0x3500, 0, 0, 0, 0, 0])
    _check_exact(regmap, "", [0] * 10)
    _check_exact(regmap, "辽BD12345X", rm.encode(regmap, {"v": "辽BD12345X"}))


def test_string_decoding_stops_at_nul_and_strips_space_padding():
    regmap = _codec("str", words=3)
    assert rm.decode(regmap, [0x4142, 0x0043, 0x4445])["v"] == "AB"
    assert rm.decode(regmap, [0x4142, 0x2020, 0x2020])["v"] == "AB"


def test_string_too_long_or_not_text_is_refused():
    regmap = _codec("str", words=4)
    assert "holds 8 bytes" in _raises(rm.encode, regmap, {"v": "辽B1234567"})
    assert "not UTF-8" in _raises(rm.decode, regmap, [0xFFFE, 0, 0, 0])
    ascii_map = _codec("str", words=4, encoding="ascii")
    assert "ASCII" in _raises(rm.encode, ascii_map, {"v": "辽B"})


def test_values_that_do_not_fit_are_refused():
    assert "does not fit" in _raises(rm.encode, _codec("uint16"), {"v": 70000})
    assert "does not fit" in _raises(rm.encode, _codec("uint16"), {"v": -1})
    assert "does not fit" in _raises(rm.encode, _codec("int16"), {"v": 40000})
    assert "does not fit" in _raises(rm.encode, _codec("int32", scale=0.1), {"v": 300000000})
    assert "needs a number" in _raises(rm.encode, _codec("int32"), {"v": "12"})
    assert "has no field" in _raises(rm.encode, _codec("int32"), {"w": 1})
    assert "has no bit" in _raises(rm.encode, _codec("bits", bits={"a": 0}), {"v": {"b": True}})


def test_decode_refuses_wrong_length_and_out_of_range_registers():
    regmap = _codec("int32")
    assert "expected 2 registers" in _raises(rm.decode, regmap, [0])
    assert "not 0..65535" in _raises(rm.decode, regmap, [0, 70000])
    assert "not 0..65535" in _raises(rm.decode, regmap, [0, -1])


def test_fields_missing_from_values_encode_as_zero():
    regmap = rm.load_named("portwatch-sim")
    words = rm.encode(regmap, {"gross_kg": 20})
    assert words == [0, 20] + [0] * 22
    decoded = rm.decode(regmap, words)
    assert decoded["plate"] == "" and decoded["tare_kg"] == 0
    assert decoded["status"]["stable"] is False


def _base_map():
    return {"model": "m", "function": 3, "start": 10, "count": 4, "fields": {
        "a": {"addr": 10, "type": "int32"}, "b": {"addr": 12, "type": "uint16"}}}


def _invalid(change):
    regmap = _base_map()
    change(regmap)
    return _raises(rm.validate, regmap)


def test_validate_accepts_the_base_map():
    assert rm.validate(_base_map())["model"] == "m"


def test_validate_names_what_is_wrong():
    cases = (
        (lambda m: m["fields"]["a"].update({"type": "int64"}), "unknown type 'int64'"),
        (lambda m: m["fields"]["b"].update({"addr": 14}), "outside the block 10..13"),
        (lambda m: m["fields"]["a"].update({"addr": 9}), "outside the block"),
        (lambda m: m["fields"]["b"].update({"addr": 11}), "overlap at register 11"),
        (lambda m: m.update({"count": 126}), "'count' must be 1..125"),
        (lambda m: m.update({"function": 6}), "'function' must be 3"),
        (lambda m: m.update({"start": -1}), "'start'"),
        (lambda m: m.update({"model": ""}), "'model'"),
        (lambda m: m.update({"fields": {}}), "'fields'"),
        (lambda m: m.update({"division_kg": 0}), "'division_kg'"),
        (lambda m: m["fields"]["a"].update({"word_order": "middle"}), "'word_order'"),
        (lambda m: m["fields"]["b"].update({"word_order": "big"}), "does not apply to type uint16"),
        (lambda m: m["fields"]["a"].update({"wordorder": "big"}), "key 'wordorder'"),
        (lambda m: m["fields"]["a"].update({"scale": 0}), "'scale'"),
        (lambda m: m["fields"]["a"].update({"decimals": -1}), "'decimals'"),
        (lambda m: m["fields"]["a"].pop("addr"), "'addr'"),
        (lambda m: m["fields"].update({"c": {"addr": 13, "type": "bits", "bits": {"x": 16}}}),
         "position 0..15"),
        (lambda m: m["fields"].update({"c": {"addr": 13, "type": "bits",
                                             "bits": {"x": 1, "y": 1}}}), "share position 1"),
        (lambda m: m["fields"].update({"c": {"addr": 13, "type": "str", "words": 0}}), "'words'"),
        (lambda m: m["fields"].update({"c": {"addr": 13, "type": "str", "words": 1,
                                             "encoding": "gbk"}}), "'encoding'"),
    )
    for change, expected in cases:
        message = _invalid(change)
        assert expected in message, (expected, message)
        assert message.startswith("register map ")


def test_validate_accepts_a_barrier_coil_and_names_what_is_wrong_with_coils():
    regmap = _base_map()
    regmap["coils"] = {"barrier": {"addr": 10, "description": "exit barrier"}}
    assert rm.validate(regmap) is regmap  # coils are their own address space: 10 is free
    cases = (
        ({"barrier": {"addr": 65536}}, "coil 'barrier' needs an 'addr' 0..65535"),
        ({"barrier": {"addr": -1}}, "coil 'barrier' needs an 'addr' 0..65535"),
        ({"barrier": {"addr": True}}, "coil 'barrier' needs an 'addr'"),
        ({"barrier": 3}, "coil 'barrier' needs an 'addr'"),
        ({"barier": {"addr": 1}}, "coil 'barier': the agent drives only barrier"),
        ({"barrier": {"addr": 1, "on": 1}}, "coil 'barrier': key 'on' does not apply"),
        ([1], "'coils' must be an object"),
    )
    for coils, expected in cases:
        message = _invalid(lambda m, coils=coils: m.update({"coils": coils}))
        assert expected in message, (expected, message)


def test_bundled_maps_name_their_barrier_coil():
    assert rm.load_named("portwatch-sim")["coils"]["barrier"]["addr"] == 0
    assert rm.load_named("float32-le-sim")["coils"]["barrier"]["addr"] == 2


def test_validate_refuses_non_objects():
    assert "JSON object" in _raises(rm.validate, [1, 2])


def _truck_values():
    return {
        "gross_kg": 45120, "tare_kg": 15000, "net_kg": 30120,
        "status": {"stable": True, "net_mode": True}, "position": {"deck_left_blocked": True},
        "plate": "辽B12345", "heartbeat": 7,
    }


def _expand_bits(values, regmap):
    out = dict(values)
    for name in ("status", "position"):
        bits = regmap["fields"][name]["bits"]
        out[name] = dict((b, bool(values[name].get(b, False))) for b in bits)
    return out


def test_portwatch_sim_map_has_documented_layout():
    regmap = rm.load_named("portwatch-sim")
    words = rm.encode(regmap, _truck_values())
    assert regmap["function"] == 3 and regmap["start"] == 0 and len(words) == 24
    assert words[0:8] == [0, 45120, 0, 15000, 0, 30120, 0x0041, 0x0004]
    assert words[8:13] == [0xE8BE, 0xBD42, 0x3132, 0x3334, 0x3500]
    assert words[18] == 7
    assert rm.decode(regmap, words) == _expand_bits(_truck_values(), regmap)


def test_float32_le_sim_map_differs_and_round_trips():
    regmap = rm.load_named("float32-le-sim")
    words = rm.encode(regmap, _truck_values())
    assert regmap["function"] == 4 and regmap["start"] == 100 and len(words) == 18
    assert words[0:2] == [0x7AE1, 0x4234]  # 45.12 t, least significant word first
    assert words[6] == (1 << 3) | (1 << 0)  # stable at bit 3, net mode at bit 0
    assert words[8] == 1  # deck_left_blocked at bit 0
    assert rm.decode(regmap, words) == _expand_bits(_truck_values(), regmap)


def test_both_maps_name_the_portwatch_vocabulary():
    for name in ("portwatch-sim", "float32-le-sim"):
        regmap = rm.load_named(name)
        fields = regmap["fields"]
        for field in ("gross_kg", "tare_kg", "net_kg", "status", "position", "plate"):
            assert field in fields, (name, field)
        for bit in _ALL_BITS:
            assert bit in fields["status"]["bits"], (name, bit)
        for bit in _ALL_POSITION:
            assert bit in fields["position"]["bits"], (name, bit)
        assert regmap["division_kg"] > 0 and regmap["capacity_kg"] > regmap["division_kg"]
