"""Decode a weighing indicator's registers with a register map: the firmware's half.

The device needs only ``decode``: maps are validated when they are written (tests and
``protocols.registermap.validate``), so the firmware does not carry the validator and
the encoder, which would cost it about 13 KiB of its 96 KiB heap. The full codec,
``protocols.registermap``, re-exports everything here.
"""

import json
import struct

_F32_MAX = 3.4028234e38

# type -> (registers, struct format, smallest, largest); None where not numeric
_NUMERIC = {
    "uint16": (1, ">H", 0, 0xFFFF),
    "int16": (1, ">h", -0x8000, 0x7FFF),
    "uint32": (2, ">I", 0, 0xFFFFFFFF),
    "int32": (2, ">i", -0x80000000, 0x7FFFFFFF),
    "float32": (2, ">f", -_F32_MAX, _F32_MAX),
}


class RegisterMapError(ValueError):
    """A register map is malformed, or a value does not fit the map."""


def _is_int(x):
    return isinstance(x, int) and not (x is True or x is False)


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
    for word in registers:
        if not _is_int(word) or not 0 <= word <= 0xFFFF:
            raise RegisterMapError("register value %r is not 0..65535" % (word,))
    out = {}
    fields = regmap["fields"]
    start = regmap["start"]
    for name in fields:
        field = fields[name]
        out[name] = decode_field(field, registers, field["addr"] - start)
    return out


def decode_field(field, registers, offset):
    """Decode one field whose first register is ``registers[offset]``."""
    kind = field["type"]
    if kind == "bits":
        word = registers[offset]
        bits = field["bits"]
        return dict((name, (word >> bits[name]) & 1 == 1) for name in bits)
    if kind == "str":
        return _decode_str(field, registers, offset)
    n, fmt = _NUMERIC[kind][0], _NUMERIC[kind][1]
    if n == 1:
        raw = struct.unpack(fmt, struct.pack(">H", registers[offset]))[0]
    else:
        hi, lo = registers[offset], registers[offset + 1]
        if field.get("word_order", "big") == "little":
            hi, lo = lo, hi
        raw = struct.unpack(fmt, struct.pack(">HH", hi, lo))[0]
    return _scaled(field, raw)


def _scaled(field, raw):
    scale = field.get("scale", 1)
    if isinstance(raw, float):
        if raw != raw or raw in (float("inf"), float("-inf")):
            return None
        value = _shortest_f32(raw) * scale
        if "decimals" not in field:
            return round(value, 6)
    else:
        value = raw * scale
    decimals = field.get("decimals", _places(scale))
    if decimals == 0:
        return round(value)
    return round(value, decimals)


def _places(scale):
    """Decimal places of a scale factor: 1 and 10 -> 0, 0.1 -> 1, 0.05 -> 2."""
    if _is_int(scale):
        return 0
    for d in range(10):
        x = scale * 10**d
        if abs(x - round(x)) < 1e-9 * max(1, abs(x)):
            return d
    return 9


def _shortest_f32(value):
    """The shortest decimal that is the same float32, e.g. 45.119998931884766 -> 45.12.

    An indicator displays the decimal it meant; this recovers it before scaling so that
    45.12 t becomes 45120 kg, not 45119.998931884766 kg.
    """
    want = struct.pack(">f", value)
    for digits in range(1, 10):
        candidate = float(("%." + str(digits) + "g") % value)
        if struct.pack(">f", candidate) == want:
            return candidate
    return value


def _decode_str(field, registers, offset):
    words = field["words"]
    raw = struct.pack(">" + str(words) + "H", *registers[offset:offset + words])
    end = raw.find(b"\x00")
    if end >= 0:
        raw = raw[:end]
    try:
        text = raw.decode("utf-8")
    except UnicodeError:
        raise RegisterMapError("string field holds bytes that are not UTF-8: %r" % (raw,))
    return text.rstrip(" ")
