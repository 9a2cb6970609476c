"""NMEA 0183 from a GNSS receiver: GGA and RMC sentences of any talker, and a UART line splitter.

A sentence is ``$<talker><type>,<field>,...*<hh>`` where ``hh`` is the XOR of every
character between ``$`` and ``*`` as two hex digits. ``parse`` returns a dict or raises
``NMEAError`` with one of these stable ``reason`` codes, and never any other exception:

- ``too_long``: over ``MAX_LINE`` characters (the standard's 82, not counting CR LF);
- ``bad_char``: a byte outside printable ASCII (line noise, a wrong baud rate);
- ``malformed``: no ``$``, no ``*hh``, a bad address or the wrong number of fields;
- ``bad_checksum``: the XOR does not match;
- ``unsupported``: a sentence other than GGA and RMC (GSV, VTG, proprietary ``$P...``);
- ``bad_field``: a field that is not what it must be (non-numeric, hemisphere not
  N/S or E/W, latitude over 90, minutes over 60, impossible time or date);
- ``no_fix``: a well-formed sentence that carries no position (GGA quality 0, RMC
  status V, empty coordinates): the receiver is fine, the sky is not.

Positions come as decimal degrees (``lat``, ``lon``, floats, south and west negative)
and as exact integers in millionths of a degree (``lat_e6``, ``lon_e6``, as JT/T 808
carries them): an ESP32's single-precision float keeps only about a metre.
MicroPython-compatible: plain functions, no f-strings, no typing at runtime.
"""

MAX_LINE = 82
KMH_PER_KNOT = 1.852
_DIGITS = "0123456789"
_HEX = "0123456789ABCDEFabcdef"
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_RMC_MODES = "ADEFMNPRS"


class NMEAError(ValueError):
    """A line that is not a usable sentence; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


def checksum(body: str) -> int:
    """XOR of the characters of ``body`` (the text between ``$`` and ``*``)."""
    value = 0
    for ch in body:
        value ^= ord(ch)
    return value


def sentence(body: str) -> str:
    """``$<body>*<hh>``: a checksummed sentence (for emulators and tests)."""
    return "$%s*%02X" % (body, checksum(body))


def parse(line: "bytes | str") -> dict:
    """Parse one GGA or RMC sentence, with or without its CR LF; raise NMEAError."""
    fields = _fields(_text(line))
    kind = fields[0][2:]
    if kind == "GGA":
        out = _gga(fields)
    elif kind == "RMC":
        out = _rmc(fields)
    else:
        raise NMEAError("unsupported", "%s sentences are not read" % fields[0])
    out["sentence"] = kind
    out["talker"] = fields[0][:2]
    return out


def _text(line: "bytes | str") -> str:
    """The sentence as text, terminators removed, checked for length and characters.

    Character by character, without a list of codes: on a device every sentence would
    otherwise need a 1 KB block in one piece, which a fragmented 96 KiB heap may not have.
    """
    if isinstance(line, str):
        is_str = True
    elif isinstance(line, (bytes, bytearray, memoryview)):
        line = bytes(line)
        is_str = False
    else:
        raise NMEAError("malformed", "a line is bytes or str, not %s" % type(line).__name__)
    end = len(line)
    while end and (ord(line[end - 1]) if is_str else line[end - 1]) in (10, 13):
        end -= 1
    if end > MAX_LINE:
        raise NMEAError("too_long", "%d characters, limit %d" % (end, MAX_LINE))
    for i in range(end):
        c = ord(line[i]) if is_str else line[i]
        if not 32 <= c <= 126:
            raise NMEAError("bad_char", "code %d at %d is not printable ASCII" % (c, i))
    return line[:end] if is_str else line[:end].decode()


def _fields(text: str) -> list:
    """Check framing, checksum and address; return the comma-separated fields."""
    if not text.startswith("$"):
        raise NMEAError("malformed", "a sentence starts with '$'")
    star = text.find("*")
    if star < 0:
        raise NMEAError("malformed", "no '*' and checksum at the end")
    hh = text[star + 1 :]
    if len(hh) != 2 or hh[0] not in _HEX or hh[1] not in _HEX:
        raise NMEAError("malformed", "the checksum after '*' must be two hex digits")
    body = text[1:star]
    if "$" in body:
        raise NMEAError("malformed", "'$' inside a sentence: two sentences run together")
    got = checksum(body)
    if got != int(hh, 16):
        raise NMEAError("bad_checksum", "sentence says %s, content gives %02X" % (hh, got))
    fields = body.split(",")
    address = fields[0]
    if address.startswith("P"):
        raise NMEAError("unsupported", "proprietary sentence %s" % address)
    if len(address) != 5 or not _all_in(address, _UPPER):
        raise NMEAError("malformed", "address %r is not a talker and a sentence type" % address)
    return fields


def _split_dot(text: str) -> "tuple[str, str]":
    """(whole, fraction) digits around the one decimal point (str.partition may be absent)."""
    dot = text.find(".")
    return (text, "") if dot < 0 else (text[:dot], text[dot + 1 :])


def _all_in(text: str, chars: str) -> bool:
    return all(ch in chars for ch in text)


def _int(text: str, name: str) -> "int | None":
    """A non-negative integer field, or None when empty."""
    if text == "":
        return None
    if not _all_in(text, _DIGITS):
        raise NMEAError("bad_field", "%s %r is not an integer" % (name, text))
    return int(text)


def _decimal(text: str, name: str, signed: bool = False) -> "float | None":
    """A decimal field like ``12.5`` (``-12.5`` when ``signed``), or None when empty."""
    if text == "":
        return None
    digits = text[1:] if signed and text.startswith("-") else text
    whole, frac = _split_dot(digits)
    if not whole or not _all_in(whole, _DIGITS) or not _all_in(frac, _DIGITS):
        raise NMEAError("bad_field", "%s %r is not a decimal number" % (name, text))
    return float(text)


def _time_ms(text: str) -> int:
    """``hhmmss[.sss]`` as ms since midnight UTC."""
    whole, frac = _split_dot(text)
    if len(whole) != 6 or not _all_in(whole, _DIGITS) or not _all_in(frac, _DIGITS):
        raise NMEAError("bad_field", "time %r is not hhmmss.ss" % text)
    hh, mm, ss = int(whole[:2]), int(whole[2:4]), int(whole[4:])
    if hh > 23 or mm > 59 or ss > 60:  # 60: a leap second
        raise NMEAError("bad_field", "time %r is not a time of day" % text)
    ms = int((frac + "000")[:3])
    return ((hh * 60 + mm) * 60 + ss) * 1000 + ms


def _days(text: str) -> int:
    """``ddmmyy`` as days since 1970-01-01; two-digit years read as 1980-2079."""
    if len(text) != 6 or not _all_in(text, _DIGITS):
        raise NMEAError("bad_field", "date %r is not ddmmyy" % text)
    d, m, y = int(text[:2]), int(text[2:4]), int(text[4:])
    y += 1900 if y >= 80 else 2000
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if not 1 <= m <= 12 or not 1 <= d <= _DAYS_IN_MONTH[m - 1] + (1 if m == 2 and leap else 0):
        raise NMEAError("bad_field", "date %r does not exist" % text)
    # days from the civil date (H. Hinnant's algorithm), without datetime
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _coord(value: str, hemi: str, deg_digits: int, limit: int, pos: str, neg: str,
           name: str) -> int:
    """``[d]ddmm.mmmm`` and its hemisphere letter as signed millionths of a degree."""
    if value == "" and hemi == "":
        raise NMEAError("no_fix", "no %s" % name)
    if hemi not in (pos, neg):
        raise NMEAError("bad_field", "%s hemisphere %r is not %s or %s" % (name, hemi, pos, neg))
    whole, frac = _split_dot(value)
    if (not 3 <= len(whole) <= deg_digits + 2 or not _all_in(whole, _DIGITS)
            or not _all_in(frac, _DIGITS) or len(frac) > 9):
        raise NMEAError("bad_field", "%s %r is not %sdmm.mmmm" % (name, value, "d" * deg_digits))
    degrees = int(whole[:-2])
    minutes = int(whole[-2:] + frac)  # in units of 10**-len(frac) minutes
    scale = 10 ** len(frac)
    if minutes >= 60 * scale:
        raise NMEAError("bad_field", "%s %r has 60 minutes or more" % (name, value))
    e6 = degrees * 1000000 + (minutes * 2000000 + 60 * scale) // (120 * scale)
    if e6 > limit * 1000000:
        raise NMEAError("bad_field", "%s %r is beyond %d degrees" % (name, value, limit))
    return -e6 if hemi == neg else e6


def _position(out: dict, f: list, i: int) -> None:
    """Latitude and longitude from fields i..i+3 into ``out``."""
    lat = _coord(f[i], f[i + 1], 2, 90, "N", "S", "latitude")
    lon = _coord(f[i + 2], f[i + 3], 3, 180, "E", "W", "longitude")
    out["lat_e6"] = lat
    out["lon_e6"] = lon
    out["lat"] = lat / 1000000
    out["lon"] = lon / 1000000


def _gga(f: list) -> dict:
    """GGA: time, position, fix quality, satellites, HDOP, altitude."""
    if len(f) != 15:
        raise NMEAError("malformed", "GGA has %d fields, not 14" % (len(f) - 1))
    quality = _int(f[6], "fix quality")
    if not quality:
        raise NMEAError("no_fix", "GGA fix quality is %s" % ("empty" if quality is None else 0))
    if quality > 8:
        raise NMEAError("bad_field", "GGA fix quality %d is not 0-8" % quality)
    if f[1] == "":
        raise NMEAError("bad_field", "GGA with a fix but no time")
    out = {"time_ms": _time_ms(f[1]), "quality": quality}
    _position(out, f, 2)
    out["satellites"] = _int(f[7], "satellites")
    out["hdop"] = _decimal(f[8], "HDOP")
    out["alt_m"] = _decimal(f[9], "altitude", True)
    out["geoid_m"] = _decimal(f[11], "geoid separation", True)
    for unit in (f[10], f[12]):
        if unit not in ("M", ""):
            raise NMEAError("bad_field", "GGA height unit %r is not M" % unit)
    return out


def _rmc(f: list) -> dict:
    """RMC: time and date, status, position, speed (km/h) and course."""
    if not 12 <= len(f) <= 14:
        raise NMEAError("malformed", "RMC has %d fields, not 11-13" % (len(f) - 1))
    mode = f[12] if len(f) > 12 and f[12] else None
    if mode is not None and (len(mode) != 1 or mode not in _RMC_MODES):
        raise NMEAError("bad_field", "RMC mode %r is unknown" % mode)
    if f[2] == "V" or mode == "N":
        raise NMEAError("no_fix", "RMC status is V (void)")
    if f[2] != "A":
        raise NMEAError("bad_field", "RMC status %r is not A or V" % f[2])
    if f[1] == "" or f[9] == "":
        raise NMEAError("bad_field", "RMC with a fix but no time or date")
    time_ms = _time_ms(f[1])
    out = {"time_ms": time_ms, "ts": _days(f[9]) * 86400000 + time_ms, "mode": mode}
    _position(out, f, 3)
    knots = _decimal(f[7], "speed")
    out["speed_kmh"] = None if knots is None else knots * KMH_PER_KNOT
    course = _decimal(f[8], "course")
    if course is not None and course > 360:
        raise NMEAError("bad_field", "course %r is over 360 degrees" % f[8])
    out["course"] = course
    return out


class LineSplitter:
    """Cut a UART byte stream, in chunks of any size, into lines without their CR LF.

    The buffer is allocated once (``max_line`` + 1 bytes, room for a CR). A line that
    outgrows it is garbage (a wrong baud rate, a stuck line): its bytes are dropped up to
    the next LF and it is counted in ``discarded``. Empty lines are skipped.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.discarded = 0
        self._buf = bytearray(max_line + 1)
        self._n = 0
        self._skipping = False

    def feed(self, chunk: "bytes | None") -> list:
        """Take the next bytes (None, as a UART read that timed out, is nothing); return lines."""
        lines = []
        if not chunk:
            return lines
        if isinstance(chunk, memoryview):
            chunk = bytes(chunk)
        start, end = 0, len(chunk)
        while start < end:
            nl = chunk.find(b"\n", start)
            stop = end if nl < 0 else nl
            n = stop - start
            if not self._skipping:
                if self._n + n > len(self._buf):
                    self._skipping = True
                    self.discarded += 1
                    self._n = 0
                elif n:
                    self._buf[self._n : self._n + n] = chunk[start:stop]
                    self._n += n
            if nl < 0:
                break
            if not self._skipping:
                line = bytes(self._buf[: self._n])
                if line.endswith(b"\r"):
                    line = line[:-1]
                if line:
                    lines.append(line)
            self._skipping = False
            self._n = 0
            start = nl + 1
        return lines
