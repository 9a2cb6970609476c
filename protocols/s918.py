"""AAR S-918 railcar tag (128 bits, read by AEI readers): decode and encode.

Pure and MicroPython-compatible (the rail reader agent decodes on the device; the
emulator encodes). Bit 0 is the most significant bit of the 32-hex-digit tag.

Layout (bits, most significant first):
  0-4 equipment group (19 railcar, 5 locomotive), 5-6 tag type, 7-25 owner initial
  (19 bits, base 27: first letter A=0..Z=25, the next three blank=0, A=1..Z=26),
  26-45 car number, 46 side (0 left, 1 right), 47-55 the low 9 bits of the length (dm),
  56-59 the high 4 bits of axles-1, 60-61 first checksum, 62-63 frame marker (3),
  64 the low bit of axles-1, 65-67 bearing, 68-71 platform, 72-93 spare (owner's),
  94-96 the high 3 bits of the length, 97-117 reserved/security, 118-123 data format,
  124-125 second checksum, 126-127 frame marker (1).

Checksums: the standard's text was not at hand, and the aei_tag_parser crate (whose
README gives the published examples, read to check the field layout) does not check
them. The rule here was DERIVED from its three published tags (four checksum values):
for the half starting at bit h (0 or 64), e is the parity of bits h+5, h+7, .. h+59 and
o the parity of bits h+6, h+8, .. h+58; the checksum is (-(2e + o)) mod 4. Few examples
fit many rules, so this one is weakly supported: it lives in ``checksum`` alone, to be
replaced when the standard is at hand. A tag that fails it is reported as unreadable
by the caller (never dropped).
"""

from protocols.s918_read import (  # noqa: F401 - the device's part, re-exported
    FRAME1,
    FRAME2,
    GROUP_LOCOMOTIVE,
    _bits,
    decode_into,
    initial_text,
)

GROUP_RAILCAR = 19
DATA_FORMAT = 51  # the published examples' data format code


class TagError(ValueError):
    """A tag that cannot be decoded: ``reason`` is 'hex', 'frame' or 'checksum'."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason


def _get(v: int, lo: int, n: int) -> int:
    return (v >> (128 - lo - n)) & ((1 << n) - 1)


def _put(v: int, lo: int, n: int, x: int) -> int:
    if x < 0 or x >= (1 << n):
        raise ValueError("field at bit %d does not fit %d bits: %d" % (lo, n, x))
    return v | (x << (128 - lo - n))


def checksum(v: int, half: int) -> int:
    """The 2-bit checksum of half 0 (bits 0-59) or 1 (bits 64-123) of tag value ``v``."""
    h = 64 * half
    e = 0
    for i in range(h + 5, h + 60, 2):
        e ^= _get(v, i, 1)
    o = 0
    for i in range(h + 6, h + 59, 2):
        o ^= _get(v, i, 1)
    return (-(2 * e + o)) % 4


def initial_code(initial: str) -> int:
    """The 19-bit code of an owner's initial (1-4 letters A-Z)."""
    s = initial.upper()
    if not 1 <= len(s) <= 4:
        raise ValueError("an initial has 1 to 4 letters A-Z: %r" % initial)
    code = 0
    for i in range(4):
        c = s[i] if i < len(s) else " "
        if c == " " and i > 0:
            n = 0
        elif "A" <= c <= "Z":
            n = ord(c) - 65 + (0 if i == 0 else 1)
        else:
            raise ValueError("an initial has 1 to 4 letters A-Z: %r" % initial)
        code = code * 27 + n
    return code


def decode(tag_hex: str) -> dict:  # type: ignore[type-arg]
    """Decode a 32-hex-digit tag into a dict; raise TagError when it cannot be trusted.

    Keys: group, tag_type, initial, number, side, length_dm, axles, bearing, platform,
    data_format.
    """
    if not isinstance(tag_hex, str) or len(tag_hex) != 32:
        raise TagError("hex", "a tag is 32 hex digits")
    try:
        v = int(tag_hex, 16)
    except ValueError:
        raise TagError("hex", "not hexadecimal")
    if _get(v, 62, 2) != FRAME1 or _get(v, 126, 2) != FRAME2:
        raise TagError("frame", "frame markers are not 3 and 1")
    if _get(v, 60, 2) != checksum(v, 0) or _get(v, 124, 2) != checksum(v, 1):
        raise TagError("checksum")
    return {
        "group": _get(v, 0, 5),
        "tag_type": _get(v, 5, 2),
        "initial": initial_text(_get(v, 7, 19)),
        "number": _get(v, 26, 20),
        "side": _get(v, 46, 1),
        "length_dm": (_get(v, 94, 3) << 9) | _get(v, 47, 9),
        "axles": ((_get(v, 56, 4) << 1) | _get(v, 64, 1)) + 1,
        "bearing": _get(v, 65, 3),
        "platform": _get(v, 68, 4),
        "data_format": _get(v, 118, 6),
    }


def encode(initial: str, number: int, side: int = 0, length_dm: int = 0, axles: int = 4,
           group: int = GROUP_RAILCAR, tag_type: int = 3, bearing: int = 0,
           platform: int = 0, data_format: int = DATA_FORMAT) -> str:
    """The 32-hex-digit tag (upper case) of these fields, with valid checksums."""
    if not 1 <= axles <= 32:
        raise ValueError("axles must be 1-32: %r" % axles)
    v = 0
    v = _put(v, 0, 5, group)
    v = _put(v, 5, 2, tag_type)
    v = _put(v, 7, 19, initial_code(initial))
    v = _put(v, 26, 20, number)
    v = _put(v, 46, 1, side)
    if not 0 <= length_dm < 4096:
        raise ValueError("length_dm must be 0-4095: %r" % length_dm)
    v = _put(v, 47, 9, length_dm & 0x1FF)
    v = _put(v, 94, 3, length_dm >> 9)
    v = _put(v, 56, 4, (axles - 1) >> 1)
    v = _put(v, 64, 1, (axles - 1) & 1)
    v = _put(v, 62, 2, FRAME1)
    v = _put(v, 65, 3, bearing)
    v = _put(v, 68, 4, platform)
    v = _put(v, 118, 6, data_format)
    v = _put(v, 126, 2, FRAME2)
    v = _put(v, 60, 2, checksum(v, 0))
    v = _put(v, 124, 2, checksum(v, 1))
    return "%032X" % v


def corrupt(tag_hex: str) -> str:
    """The same tag with its first checksum wrong (for emulators and tests)."""
    v = int(tag_hex, 16)
    ck = _get(v, 60, 2)
    v ^= ck << 66  # clear it
    v |= ((ck + 1) % 4) << 66
    return "%032X" % v
