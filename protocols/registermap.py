"""Declarative register maps for weighing indicators: validate, decode, encode.

A register map is a plain dict (loaded from a JSON file in ``protocols/registermaps/``)
that says where a vendor's indicator keeps gross, tare, net, its status bits and so on,
so that supporting a new indicator model means writing a map file, not code. The
format is documented in ``protocols/registermaps/README.md``.

The same module runs in the edge firmware (MicroPython 1.2x) and in the controller and
emulators (CPython). It is hand-written with ``struct`` and plain dicts, rather than
built on pymodbus' payload helpers or dataclasses, because MicroPython has neither
pymodbus nor dataclasses, enum or typing; and its ``struct.pack`` silently truncates
out-of-range values, so every range check here is explicit. Under MicroPython
``isinstance(True, int)`` is False, hence the explicit ``is True`` / ``is False`` tests.

``decode`` and ``encode`` trust a map that ``validate`` accepted (``load`` validates):
the firmware validates once at boot, then decodes every poll without re-checking.
"""

import json
import struct

from protocols.regdecode import (  # noqa: F401 - the decoding half, re-exported
    RegisterMapError,
    decode,
    decode_field,
    path_of,
)

_F32_MAX = 3.4028234e38

# type -> (registers, struct format, smallest, largest) of the numeric types; the decoder
# (protocols/regdecode.py) derives the first two from the type's name
_NUMERIC = {
    "uint16": (1, ">H", 0, 0xFFFF),
    "int16": (1, ">h", -0x8000, 0x7FFF),
    "uint32": (2, ">I", 0, 0xFFFFFFFF),
    "int32": (2, ">i", -0x80000000, 0x7FFFFFFF),
    "float32": (2, ">f", -_F32_MAX, _F32_MAX),
}


def _is_int(x):
    return isinstance(x, int) and not (x is True or x is False)

MAX_REGISTERS = 125  # the most one Modbus read (function 3 or 4) may return
FUNCTIONS = (3, 4)  # 3 = holding registers, 4 = input registers
WORD_ORDERS = ("big", "little")
ENCODINGS = ("utf-8", "ascii")
TYPES = ("uint16", "int16", "uint32", "int32", "float32", "bits", "str")
COILS = ("barrier",)  # relay outputs the agent drives (function 05), by name

_COMMON_KEYS = ("addr", "type", "description", "unit")
_EXTRA_KEYS = {
    "uint16": ("scale", "decimals"),
    "int16": ("scale", "decimals"),
    "uint32": ("scale", "decimals", "word_order"),
    "int32": ("scale", "decimals", "word_order"),
    "float32": ("scale", "decimals", "word_order"),
    "bits": ("bits",),
    "str": ("words", "encoding"),
}


# ---------------------------------------------------------------- loading


def load(path):
    """Read a register map from a JSON file, validate it and return it."""
    with open(path) as f:
        regmap = json.load(f)
    validate(regmap)
    return regmap


def load_named(name):
    """Load one of the maps bundled in ``protocols/registermaps/`` by name."""
    return load(path_of(name))


# ---------------------------------------------------------------- validation


def _is_number(x):
    return _is_int(x) or isinstance(x, float)


def _fail(regmap, msg):
    model = regmap.get("model", "?") if isinstance(regmap, dict) else "?"
    raise RegisterMapError("register map %r: %s" % (model, msg))


def width(field):
    """Number of registers a (valid) field occupies."""
    kind = field["type"]
    if kind == "str":
        return field["words"]
    if kind == "bits":
        return 1
    return _NUMERIC[kind][0]


def validate(regmap):
    """Raise RegisterMapError, saying what to fix, unless ``regmap`` is a usable map."""
    if not isinstance(regmap, dict):
        raise RegisterMapError("a register map must be a JSON object, not %r" % (regmap,))
    _check_header(regmap)
    fields = regmap["fields"]
    used = {}  # register address -> name of the field that occupies it
    for name in fields:
        _check_field(regmap, name, fields[name])
        _claim(regmap, name, fields[name], used)
    if "coils" in regmap:
        _check_coils(regmap, regmap["coils"])
    return regmap


def _check_coils(regmap, coils):
    """Optional ``coils``: name -> {"addr": coil 0..65535}, written with function 05."""
    if not isinstance(coils, dict):
        _fail(regmap, "'coils' must be an object of name -> {\"addr\": coil address}")
    for name in coils:
        coil = coils[name]
        if name not in COILS:
            _fail(regmap, "coil %r: the agent drives only %s" % (name, ", ".join(COILS)))
        if not isinstance(coil, dict) or not _is_int(coil.get("addr")) \
                or not 0 <= coil["addr"] <= 0xFFFF:
            _fail(regmap, "coil %r needs an 'addr' 0..65535" % name)
        for key in coil:
            if key not in ("addr", "description"):
                _fail(regmap, "coil %r: key %r does not apply (allowed: addr, description)"
                      % (name, key))


def _check_header(regmap):
    if not isinstance(regmap.get("model"), str) or not regmap["model"]:
        _fail(regmap, "'model' must be a non-empty string naming the map")
    if regmap.get("function") not in FUNCTIONS:
        _fail(regmap, "'function' must be 3 (holding) or 4 (input registers)")
    start, count = regmap.get("start"), regmap.get("count")
    if not _is_int(start) or not 0 <= start <= 0xFFFF:
        _fail(regmap, "'start' must be a register address 0..65535")
    if not _is_int(count) or not 1 <= count <= MAX_REGISTERS:
        _fail(regmap, "'count' must be 1..%d (one Modbus read)" % MAX_REGISTERS)
    if start + count > 0x10000:
        _fail(regmap, "the block start+count runs past address 65535")
    for key in ("division_kg", "capacity_kg"):
        if key in regmap and (not _is_number(regmap[key]) or regmap[key] <= 0):
            _fail(regmap, "%r must be a positive number of kg" % key)
    fields = regmap.get("fields")
    if not isinstance(fields, dict) or not fields:
        _fail(regmap, "'fields' must be a non-empty object of name -> field")


def _check_field(regmap, name, field):
    where = "field %r" % name
    if not isinstance(field, dict):
        _fail(regmap, where + " must be an object")
    kind = field.get("type")
    if kind not in TYPES:
        _fail(regmap, "%s has unknown type %r; use one of %s" % (where, kind, ", ".join(TYPES)))
    allowed = _COMMON_KEYS + _EXTRA_KEYS[kind]
    for key in field:
        if key not in allowed:
            _fail(regmap, "%s: key %r does not apply to type %s (allowed: %s)"
                  % (where, key, kind, ", ".join(allowed)))
    if not _is_int(field.get("addr")):
        _fail(regmap, where + " needs an integer 'addr'")
    if kind == "bits":
        _check_bits(regmap, where, field.get("bits"))
    elif kind == "str":
        _check_str(regmap, where, field)
    else:
        _check_numeric(regmap, where, field)


def _check_numeric(regmap, where, field):
    scale = field.get("scale", 1)
    if not _is_number(scale) or scale == 0:
        _fail(regmap, where + ": 'scale' must be a non-zero number (value = raw * scale)")
    decimals = field.get("decimals", 0)
    if not _is_int(decimals) or not 0 <= decimals <= 9:
        _fail(regmap, where + ": 'decimals' must be an integer 0..9")
    if field.get("word_order", "big") not in WORD_ORDERS:
        _fail(regmap, where + ": 'word_order' must be 'big' (MSW first) or 'little'")


def _check_bits(regmap, where, bits):
    if not isinstance(bits, dict) or not bits:
        _fail(regmap, where + ": 'bits' must be a non-empty object of name -> bit 0..15")
    seen = {}
    for bit_name in bits:
        pos = bits[bit_name]
        if not _is_int(pos) or not 0 <= pos <= 15:
            _fail(regmap, "%s: bit %r must be at position 0..15" % (where, bit_name))
        if pos in seen:
            _fail(regmap, "%s: bits %r and %r share position %d"
                  % (where, seen[pos], bit_name, pos))
        seen[pos] = bit_name


def _check_str(regmap, where, field):
    words = field.get("words")
    if not _is_int(words) or words < 1:
        _fail(regmap, where + ": 'words' must be a positive number of registers")
    if field.get("encoding", "utf-8") not in ENCODINGS:
        _fail(regmap, where + ": 'encoding' must be one of " + ", ".join(ENCODINGS))


def _claim(regmap, name, field, used):
    start, count = regmap["start"], regmap["count"]
    first = field["addr"]
    last = first + width(field) - 1
    if first < start or last >= start + count:
        _fail(regmap, "field %r at %d..%d lies outside the block %d..%d: move it or raise 'count'"
              % (name, first, last, start, start + count - 1))
    for addr in range(first, last + 1):
        if addr in used:
            _fail(regmap, "fields %r and %r overlap at register %d" % (used[addr], name, addr))
        used[addr] = name


# ---------------------------------------------------------------- encoding


def encode(regmap, values):
    """Build the ``count`` registers from ``start`` that decode to ``values``.

    The inverse of ``decode`` (emulators use it). Fields missing from ``values`` are
    left at 0 (empty string, all bits clear); a name the map does not define, a value
    of the wrong kind or one that does not fit its field raises RegisterMapError.
    """
    registers = [0] * regmap["count"]
    fields = regmap["fields"]
    start = regmap["start"]
    for name in values:
        if name not in fields:
            raise RegisterMapError("map %r has no field %r" % (regmap.get("model"), name))
        field = fields[name]
        words = encode_field(field, values[name], name)
        offset = field["addr"] - start
        registers[offset:offset + len(words)] = words
    return registers


def encode_field(field, value, name="?"):
    """Return the list of register values for one field's value."""
    kind = field["type"]
    if kind == "bits":
        return [_encode_bits(field, value, name)]
    if kind == "str":
        return _encode_str(field, value, name)
    if not _is_number(value):
        raise RegisterMapError("field %r needs a number, not %r" % (name, value))
    n, fmt, lo, hi = _NUMERIC[kind]
    raw = _unscaled(kind, value, field.get("scale", 1))
    if not lo <= raw <= hi:
        raise RegisterMapError("value %r does not fit field %r (%s, scale %r)"
                               % (value, name, kind, field.get("scale", 1)))
    words = struct.unpack(">" + str(n) + "H", struct.pack(fmt, raw))
    if n == 1:
        return [words[0]]
    if field.get("word_order", "big") == "little":
        return [words[1], words[0]]
    return [words[0], words[1]]


def _unscaled(kind, value, scale):
    if kind == "float32":
        return value / scale
    if _is_int(value) and _is_int(scale) and value % scale == 0:
        return value // scale
    return round(value / scale)


def _encode_bits(field, value, name):
    if _is_int(value):
        if not 0 <= value <= 0xFFFF:
            raise RegisterMapError("field %r: raw word %r is not 0..65535" % (name, value))
        return value
    if not isinstance(value, dict):
        raise RegisterMapError("field %r needs a dict of bit name -> bool" % name)
    bits = field["bits"]
    word = 0
    for bit_name in value:
        if bit_name not in bits:
            raise RegisterMapError("field %r has no bit %r (known: %s)"
                                   % (name, bit_name, ", ".join(sorted(bits))))
        if value[bit_name]:
            word |= 1 << bits[bit_name]
    return word


def _encode_str(field, value, name):
    if not isinstance(value, str):
        raise RegisterMapError("field %r needs a string, not %r" % (name, value))
    raw = value.encode("utf-8")
    if field.get("encoding", "utf-8") == "ascii" and len(raw) != len(value):
        raise RegisterMapError("field %r is ASCII; %r is not" % (name, value))
    words = field["words"]
    if len(raw) > 2 * words:
        raise RegisterMapError("field %r holds %d bytes; %r needs %d"
                               % (name, 2 * words, value, len(raw)))
    raw = raw + b"\x00" * (2 * words - len(raw))
    return list(struct.unpack(">" + str(words) + "H", raw))
