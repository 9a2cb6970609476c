"""Decode a weighing indicator's registers with a register map: the firmware's half.

The device needs only ``decode``: maps are validated when they are written (tests and
``protocols.registermap.validate``), so the firmware does not carry the validator and
the encoder, which would cost it about 13 KiB of its 96 KiB heap. The full codec,
``protocols.registermap``, re-exports everything here.
"""

import json
import struct


class RegisterMapError(ValueError):
    """A register map is malformed, or a value does not fit the map."""


def load(path):
    """Read a map the build already validated (JSON), without validating it again."""
    with open(path) as f:
        return json.load(f)


def path_of(name):
    """Path of the bundled map called ``name`` (e.g. "portwatch-sim")."""
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    return here + "/registermaps/" + name + ".json"


def decode(regmap, registers):
    """Decode one block read (``count`` registers from ``start``) into field -> value.

    Numbers come back in the map's unit (kg for weights): ints, or floats where the
    field has decimals; ``bits`` fields give a dict of name -> bool; ``str`` fields a
    string. A float32 that holds NaN or infinity decodes to None.
    """
    count = regmap["count"]
    if len(registers) != count:
        raise RegisterMapError("expected %d registers from %d, got %d"
                               % (count, regmap["start"], len(registers)))
    for word in registers:  # an int, not a bool (MicroPython: bool is not an int)
        if not isinstance(word, int) or word is True or word is False or \
                not 0 <= word <= 0xFFFF:
            raise RegisterMapError("register value %r is not 0..65535" % (word,))
    out = {}
    fields = regmap["fields"]
    start = regmap["start"]
    for name in fields:
        field = fields[name]
        out[name] = decode_field(field, registers, field["addr"] - start)
    return out


def decode_field(field, registers, offset):
    """Decode one field whose first register is ``registers[offset]``.

    One function on purpose: on the device every function costs heap (about 90 bytes
    beyond its code), so the type table, scaling, float recovery and strings are inline.
    """
    kind = field["type"]
    word = registers[offset]
    if kind == "bits":
        bits = field["bits"]
        out = {}
        for name in bits:  # a loop: a comprehension would be one more function
            out[name] = (word >> bits[name]) & 1 == 1
        return out
    if kind == "str":
        words = field["words"]
        raw = struct.pack(">%dH" % words, *registers[offset:offset + words])
        end = raw.find(b"\x00")
        if end >= 0:
            raw = raw[:end]
        try:
            return raw.decode("utf-8").rstrip(" ")
        except UnicodeError:
            raise RegisterMapError("string field holds bytes that are not UTF-8: %r" % (raw,))
    # uint16 >H, int16 >h, uint32 >I, int32 >i, float32 >f (registermap._NUMERIC)
    if kind[-2:] == "32":
        lo = registers[offset + 1]
        if field.get("word_order", "big") == "little":
            word, lo = lo, word
        raw = struct.pack(">HH", word, lo)
        fmt = ">f" if kind == "float32" else ">I" if kind[0] == "u" else ">i"
    else:
        raw = struct.pack(">H", word)
        fmt = ">H" if kind[0] == "u" else ">h"
    raw = struct.unpack(fmt, raw)[0]
    scale = field.get("scale", 1)
    decimals = field.get("decimals")
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            return None
        # the shortest decimal that is the same float32 (45.119998931884766 -> 45.12): the
        # decimal the indicator meant, recovered before scaling, so that 45.12 t becomes
        # 45120 kg, not 45119.998931884766 kg
        want = struct.pack(">f", raw)
        for digits in range(1, 10):
            x = float(("%." + str(digits) + "g") % raw)
            if struct.pack(">f", x) == want:
                raw = x
                break
        value = raw * scale
        if decimals is None:
            return round(value, 6)
    else:
        value = raw * scale
    if decimals is None:  # the decimal places of the scale: 1 and 10 -> 0, 0.1 -> 1, 0.05 -> 2
        decimals = 9
        if isinstance(scale, int) and scale is not True and scale is not False:
            decimals = 0
        else:
            for d in range(10):
                x = scale * 10**d
                if abs(x - round(x)) < 1e-9 * max(1, abs(x)):
                    decimals = d
                    break
    if decimals == 0:
        return round(value)
    return round(value, decimals)
