"""JT/T 808 (2013 and 2019) framing and the messages portwatch uses: a pure codec.

Shared by the controller's gateway (controller/gateways/jtt808.py) and the emulated
terminal (tools/jtt808_terminal.py); MicroPython-compatible (no f-strings, no typing at
runtime, no GBK codec: a plate stays raw bytes here, the controller decodes it as GBK).
Hand-written because no maintained library covers JT/T 808 under MicroPython.

Frame on the wire::

    0x7E | header | body | check | 0x7E

``check`` is the XOR of every header and body byte. Between the flags 0x7E is sent as
0x7D 0x02 and 0x7D as 0x7D 0x01. Everything is big-endian. Header (2013)::

    msg id WORD | props WORD | phone BCD[6]  | serial WORD | [pkg total WORD | pkg index WORD]

and 2019 (props bit 14 set)::

    msg id WORD | props WORD | version BYTE | phone BCD[10] | serial WORD | [pkg fields]

props: bits 0-9 body length, 10-12 encryption (0: none), 13 subpackage, 14 version flag.

Errors are ``JT808Error`` with a stable ``reason``; ``Splitter.feed`` never raises on
bad input: it returns them among the frames so that a server loop counts and goes on.
Reasons: ``garbage`` (bytes outside a frame), ``too_long`` (no end flag within
``MAX_ESCAPED`` bytes), ``bad_escape`` (0x7D not followed by 0x01 or 0x02),
``bad_check`` (XOR mismatch), ``too_short`` (shorter than a header and check),
``bad_length`` (body length in props differs from the bytes received), ``encrypted``
(encryption bits set: not supported), ``bad_body`` (a message body that does not follow
its table), ``unsupported`` (a message id this codec does not decode).
"""

import struct

# message ids
TERMINAL_ANSWER = 0x0001
HEARTBEAT = 0x0002
REGISTER = 0x0100
AUTHENTICATE = 0x0102
LOCATION = 0x0200
BATCH = 0x0704
PLATFORM_ANSWER = 0x8001
REGISTER_ANSWER = 0x8100

# 0x8001 / 0x0001 results
OK = 0
FAIL = 1
BAD_MESSAGE = 2
UNSUPPORTED = 3
ALARM_ACK = 4

# 0x8100 results
REG_OK = 0
REG_VEHICLE_REGISTERED = 1
REG_NO_VEHICLE = 2
REG_TERMINAL_REGISTERED = 3
REG_NO_TERMINAL = 4

# 0x0704 types
BATCH_NORMAL = 0
BATCH_BLIND_AREA = 1

# status bits
STATUS_ACC = 1 << 0
STATUS_FIXED = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3
# alarm bits
ALARM_POWER_CUT = 1 << 8
ALARM_ILLEGAL_DISPLACEMENT = 1 << 28

FLAG = 0x7E
ESC = 0x7D
MAX_BODY = 1023  # 10 bits of length
MAX_FRAME = 4 + 1 + 10 + 2 + 4 + MAX_BODY + 1  # the longest unescaped 2019 frame
MAX_ESCAPED = 2 * MAX_FRAME  # every byte escaped
LOCATION_LEN = 28  # the fixed part of a 0x0200 body
TZ_OFFSET_MS = 8 * 3600 * 1000  # the time field is Beijing time (UTC+8)

_PROPS_LEN = 0x03FF
_PROPS_ENC = 0x1C00
_PROPS_SUB = 0x2000
_PROPS_V2019 = 0x4000


class JT808Error(ValueError):
    """A frame or body that is not usable; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail))
        self.reason = reason
        self.detail = detail


class Frame:
    """One checked frame: header fields and the raw body (``bytes``)."""

    def __init__(self, msg_id: int, phone: str, serial: int, body: bytes,
                 version: "int | None" = None, packages: "tuple[int, int] | None" = None,
                 encryption: int = 0) -> None:
        self.msg_id = msg_id
        self.phone = phone  # the BCD digits as a string, leading zeros kept
        self.serial = serial
        self.body = body
        self.version = version  # None: 2013 header; else the 2019 protocol version byte
        self.packages = packages  # None, or (total, index) when subpackaged
        self.encryption = encryption

    def __repr__(self) -> str:
        return "Frame(0x%04X, %s, serial=%d, %d bytes)" % (
            self.msg_id, self.phone, self.serial, len(self.body))


# -- bytes ----------------------------------------------------------------------------

def check_code(data: bytes) -> int:
    """XOR of every byte of ``data``."""
    value = 0
    for b in data:
        value ^= b
    return value


def escape(data: bytes) -> bytes:
    """0x7E -> 0x7D 0x02 and 0x7D -> 0x7D 0x01."""
    out = bytearray()
    for b in data:
        if b == FLAG:
            out.append(ESC)
            out.append(0x02)
        elif b == ESC:
            out.append(ESC)
            out.append(0x01)
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    """The inverse of ``escape``; JT808Error ``bad_escape`` on 0x7D not followed by 1 or 2."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            if i + 1 >= n or data[i + 1] not in (0x01, 0x02):
                raise JT808Error("bad_escape", "0x7D at offset %d is not followed by 0x01 "
                                 "or 0x02" % i)
            out.append(FLAG if data[i + 1] == 0x02 else ESC)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def bcd(digits: str, size: int) -> bytes:
    """``digits`` (a string of 0-9) as BCD[size], left-padded with zeros."""
    if len(digits) > 2 * size or digits.strip("0123456789"):
        raise JT808Error("bad_body", "%r is not at most %d decimal digits" % (digits, 2 * size))
    digits = "0" * (2 * size - len(digits)) + digits
    out = bytearray(size)
    for i in range(size):
        out[i] = (ord(digits[2 * i]) - 48) << 4 | (ord(digits[2 * i + 1]) - 48)
    return bytes(out)


def unbcd(data: bytes) -> str:
    """BCD bytes as a string of digits; JT808Error ``bad_body`` on a nibble above 9."""
    out = []
    for b in data:
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            raise JT808Error("bad_body", "0x%02X is not BCD" % b)
        out.append(chr(48 + hi))
        out.append(chr(48 + lo))
    return "".join(out)


def normal_phone(phone: str) -> str:
    """The terminal's number without the zeros BCD padding puts in front ("0" if all zeros).

    A 2013 terminal sends BCD[6] and a 2019 one BCD[10]: both name the same SIM this way.
    """
    return phone.lstrip("0") or "0"


# -- time -----------------------------------------------------------------------------

def _days_from_civil(y: int, m: int, d: int) -> int:
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> "tuple[int, int, int]":
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def time_to_ms(data: bytes) -> int:
    """BCD[6] YYMMDDhhmmss in Beijing time (UTC+8; years 2000-2099) -> epoch ms UTC."""
    digits = unbcd(data)
    yy, mo, dd = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    hh, mi, ss = int(digits[6:8]), int(digits[8:10]), int(digits[10:12])
    if not 1 <= mo <= 12 or not 1 <= dd <= _MONTH_DAYS[mo - 1] or hh > 23 or mi > 59 \
            or ss > 59 or (mo == 2 and dd == 29 and yy % 4):
        raise JT808Error("bad_body", "time %s is not a date and time YYMMDDhhmmss" % digits)
    days = _days_from_civil(2000 + yy, mo, dd)
    return ((days * 24 + hh) * 60 + mi) * 60000 + ss * 1000 - TZ_OFFSET_MS


def ms_to_time(ts_ms: int) -> bytes:
    """Epoch ms UTC -> BCD[6] YYMMDDhhmmss in Beijing time (milliseconds dropped)."""
    secs = (ts_ms + TZ_OFFSET_MS) // 1000
    days, rem = secs // 86400, secs % 86400
    y, m, d = _civil_from_days(days)
    if not 2000 <= y <= 2099:
        raise JT808Error("bad_body", "time %d ms is outside 2000-2099" % ts_ms)
    digits = "%02d%02d%02d%02d%02d%02d" % (y - 2000, m, d, rem // 3600, rem // 60 % 60,
                                            rem % 60)
    return bcd(digits, 6)


# -- frames ---------------------------------------------------------------------------

def encode_frame(msg_id: int, phone: str, serial: int, body: bytes,
                 version: "int | None" = None,
                 packages: "tuple[int, int] | None" = None) -> bytes:
    """A whole escaped frame with its flags. ``version`` None: a 2013 header (BCD[6]
    phone); an int: a 2019 header with that protocol version byte (BCD[10] phone).
    ``packages``: (total, index) for a subpackage."""
    if len(body) > MAX_BODY:
        raise JT808Error("too_long", "body of %d bytes, limit %d" % (len(body), MAX_BODY))
    props = len(body)
    if packages is not None:
        props |= _PROPS_SUB
    if version is None:
        head = struct.pack(">HH", msg_id, props) + bcd(phone, 6)
    else:
        head = struct.pack(">HHB", msg_id, props | _PROPS_V2019, version) + bcd(phone, 10)
    head += struct.pack(">H", serial & 0xFFFF)
    if packages is not None:
        head += struct.pack(">HH", packages[0], packages[1])
    raw = head + bytes(body)
    return b"\x7e" + escape(raw + bytes((check_code(raw),))) + b"\x7e"


def decode_frame(inner: bytes) -> Frame:
    """Decode the bytes between two flags (still escaped) into a ``Frame``; JT808Error."""
    raw = unescape(inner)
    if len(raw) < 13:
        raise JT808Error("too_short", "%d bytes, a frame has at least 13" % len(raw))
    if check_code(raw[:-1]) != raw[-1]:
        raise JT808Error("bad_check", "check code 0x%02X, computed 0x%02X"
                         % (raw[-1], check_code(raw[:-1])))
    msg_id, props = struct.unpack(">HH", raw[:4])
    if props & _PROPS_V2019:
        if len(raw) < 18:
            raise JT808Error("too_short", "%d bytes, a 2019 frame has at least 18" % len(raw))
        version = raw[4]
        phone = unbcd(raw[5:15])
        pos = 15
    else:
        version = None
        phone = unbcd(raw[4:10])
        pos = 10
    serial = struct.unpack(">H", raw[pos:pos + 2])[0]
    pos += 2
    packages = None
    if props & _PROPS_SUB:
        if len(raw) < pos + 5:
            raise JT808Error("too_short", "subpackage fields missing")
        packages = struct.unpack(">HH", raw[pos:pos + 4])
        pos += 4
    body = raw[pos:-1]
    if len(body) != props & _PROPS_LEN:
        raise JT808Error("bad_length", "props say %d body bytes, frame holds %d"
                         % (props & _PROPS_LEN, len(body)))
    encryption = (props & _PROPS_ENC) >> 10
    if encryption:
        raise JT808Error("encrypted", "encryption 0x%X is not supported" % encryption)
    return Frame(msg_id, phone, serial, body, version, packages, encryption)


class Splitter:
    """Cut a TCP byte stream into frames: ``feed(chunk)`` returns a list whose items are
    ``Frame`` or ``JT808Error`` (never raised). ``errors`` counts them per reason and
    ``dropped_bytes`` the bytes thrown away.

    A candidate frame that fails leaves its closing flag as the opening flag of the next
    one: after garbage that held a 0x7E, the next good frame is still found.
    """

    def __init__(self, max_escaped: int = MAX_ESCAPED) -> None:
        self.max_escaped = max_escaped
        self.errors = {}
        self.frames = 0
        self.dropped_bytes = 0
        self._buf = bytearray()
        self._in_frame = False
        self._skipping = False  # inside a frame found too long: drop until the next flag
        self._garbage = 0

    def _error(self, out: list, reason: str, detail: str, size: int) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1
        self.dropped_bytes += size
        out.append(JT808Error(reason, detail))

    def _flush_garbage(self, out: list) -> None:
        if self._garbage:
            self._error(out, "garbage", "%d bytes outside a frame" % self._garbage,
                        self._garbage)
            self._garbage = 0

    def feed(self, chunk: bytes) -> "list[Frame | JT808Error]":
        """Take the next bytes read from the connection; return the frames and errors
        they complete (in order)."""
        out = []
        buf = self._buf
        for b in chunk:
            if b == FLAG:
                self._flush_garbage(out)
                if self._skipping:
                    self._skipping = False
                    self._in_frame = True  # this flag may open the next frame
                elif not self._in_frame or not buf:
                    self._in_frame = True
                else:
                    try:
                        frame = decode_frame(bytes(buf))
                    except JT808Error as exc:
                        self._error(out, exc.reason, exc.detail, len(buf) + 2)
                        self._in_frame = True
                    else:
                        self.frames += 1
                        out.append(frame)
                        self._in_frame = False
                    buf = self._buf = bytearray()
            elif self._skipping:
                self.dropped_bytes += 1
            elif self._in_frame:
                buf.append(b)
                if len(buf) > self.max_escaped:
                    self._error(out, "too_long", "no end flag within %d bytes"
                                % self.max_escaped, len(buf))
                    buf = self._buf = bytearray()
                    self._skipping = True
                    self._in_frame = False
            else:
                self._garbage += 1
        # garbage is reported when its run ends (a flag), not per chunk
        return out

    def pending(self) -> int:
        """Bytes held of a frame not yet complete (a torn frame waiting for its end)."""
        return len(self._buf)


# -- message bodies -------------------------------------------------------------------

def _need(body: bytes, size: int, what: str) -> None:
    if len(body) < size:
        raise JT808Error("bad_body", "%s needs %d bytes, got %d" % (what, size, len(body)))


def _fixed(text: "str | bytes", size: int) -> bytes:
    # a fixed-size field: ASCII, zero-padded at the end
    data = text if isinstance(text, bytes) else text.encode()
    if len(data) > size:
        raise JT808Error("bad_body", "%r is longer than %d bytes" % (data, size))
    return data + b"\x00" * (size - len(data))


def _unfixed(data: bytes) -> bytes:
    end = len(data)
    while end and data[end - 1] == 0:
        end -= 1
    return bytes(data[:end])


def encode_answer(answer_serial: int, answer_id: int, result: int) -> bytes:
    """Body of 0x8001 (platform) or 0x0001 (terminal) general answer."""
    return struct.pack(">HHB", answer_serial, answer_id, result)


def decode_answer(body: bytes) -> dict:
    """0x8001 / 0x0001 body -> dict answer_serial, answer_id, result."""
    if len(body) != 5:
        raise JT808Error("bad_body", "a general answer is 5 bytes, got %d" % len(body))
    serial, msg_id, result = struct.unpack(">HHB", body)
    return {"answer_serial": serial, "answer_id": msg_id, "result": result}


def _reg_sizes(version: "int | None") -> "tuple[int, int, int]":
    # maker id, model, terminal id: 5/20/7 bytes in 2013, 11/30/30 in 2019
    return (5, 20, 7) if version is None else (11, 30, 30)


def encode_register(reg: dict, version: "int | None" = None) -> bytes:
    """Body of 0x0100 from a dict: province, city (ints), maker, model, terminal_id
    (ASCII), plate_color (int), plate (bytes as sent: GBK)."""
    maker, model, term = _reg_sizes(version)
    return (struct.pack(">HH", reg["province"], reg["city"]) + _fixed(reg["maker"], maker)
            + _fixed(reg["model"], model) + _fixed(reg["terminal_id"], term)
            + bytes((reg["plate_color"],)) + bytes(reg["plate"]))


def decode_register(body: bytes, version: "int | None" = None) -> dict:
    """0x0100 body -> dict (``plate`` raw bytes; ``maker``, ``model``, ``terminal_id``
    bytes with their zero padding cut)."""
    maker, model, term = _reg_sizes(version)
    size = 4 + maker + model + term + 1
    _need(body, size, "a registration")
    province, city = struct.unpack(">HH", body[:4])
    p = 4
    out = {"province": province, "city": city}
    for name, n in (("maker", maker), ("model", model), ("terminal_id", term)):
        out[name] = _unfixed(body[p:p + n])
        p += n
    out["plate_color"] = body[p]
    out["plate"] = bytes(body[p + 1:])
    return out


def encode_register_answer(answer_serial: int, result: int, auth_code: bytes = b"") -> bytes:
    """Body of 0x8100; the auth code goes only with result 0."""
    body = struct.pack(">HB", answer_serial, result)
    return body + bytes(auth_code) if result == REG_OK else body


def decode_register_answer(body: bytes) -> dict:
    """0x8100 body -> dict answer_serial, result, auth_code (bytes)."""
    _need(body, 3, "a registration answer")
    serial, result = struct.unpack(">HB", body[:3])
    return {"answer_serial": serial, "result": result, "auth_code": bytes(body[3:])}


def encode_auth(auth_code: bytes, version: "int | None" = None, imei: bytes = b"",
                software: bytes = b"") -> bytes:
    """Body of 0x0102: the code alone (2013), or length-prefixed with IMEI BYTE[15] and
    software version BYTE[20] (2019)."""
    code = bytes(auth_code)
    if version is None:
        return code
    return bytes((len(code),)) + code + _fixed(imei, 15) + _fixed(software, 20)


def decode_auth(body: bytes, version: "int | None" = None) -> dict:
    """0x0102 body -> dict auth_code (bytes) [, imei, software (2019)]."""
    if version is None:
        return {"auth_code": bytes(body)}
    _need(body, 1, "an authentication")
    n = body[0]
    _need(body, 1 + n + 35, "a 2019 authentication")
    return {"auth_code": bytes(body[1:1 + n]), "imei": _unfixed(body[1 + n:16 + n]),
            "software": _unfixed(body[16 + n:36 + n])}


def encode_location(loc: dict) -> bytes:
    """Body of 0x0200 from a dict: alarm, status, lat_e6, lon_e6 (signed: the south and
    west bits of status are set from their signs), alt_m, speed_dkmh, course, ts_ms
    (epoch ms UTC) and optional extras (a list of (id, bytes))."""
    status = loc["status"] & ~(STATUS_SOUTH | STATUS_WEST)
    lat, lon = loc["lat_e6"], loc["lon_e6"]
    if lat < 0:
        status |= STATUS_SOUTH
    if lon < 0:
        status |= STATUS_WEST
    out = struct.pack(">IIIIHHH", loc["alarm"], status, abs(lat), abs(lon),
                      loc.get("alt_m", 0), loc["speed_dkmh"], loc["course"])
    out += ms_to_time(loc["ts_ms"])
    for item_id, value in loc.get("extras", ()):
        out += bytes((item_id, len(value))) + bytes(value)
    return out


def decode_location(body: bytes) -> dict:
    """0x0200 body -> dict alarm, status, lat_e6, lon_e6 (signed), alt_m, speed_dkmh,
    course, ts_ms (epoch ms UTC), time (the BCD digits as sent), extras [(id, bytes)]."""
    _need(body, LOCATION_LEN, "a location report")
    alarm, status, lat, lon, alt, speed, course = struct.unpack(">IIIIHHH", body[:22])
    if lat > 90000000 or lon > 180000000:
        raise JT808Error("bad_body", "latitude %d or longitude %d (millionths of a degree) "
                         "out of range" % (lat, lon))
    if status & STATUS_SOUTH:
        lat = -lat
    if status & STATUS_WEST:
        lon = -lon
    ts = time_to_ms(body[22:28])
    extras = []
    p = LOCATION_LEN
    while p < len(body):
        if p + 2 > len(body) or p + 2 + body[p + 1] > len(body):
            raise JT808Error("bad_body", "extra item at offset %d runs past the body" % p)
        extras.append((body[p], bytes(body[p + 2:p + 2 + body[p + 1]])))
        p += 2 + body[p + 1]
    return {"alarm": alarm, "status": status, "lat_e6": lat, "lon_e6": lon, "alt_m": alt,
            "speed_dkmh": speed, "course": course, "ts_ms": ts,
            "time": unbcd(body[22:28]), "extras": extras}


def encode_batch(items: list, kind: int = BATCH_NORMAL) -> bytes:
    """Body of 0x0704 from 0x0200 bodies (bytes): count WORD, type BYTE, then each item
    as length WORD + body."""
    out = struct.pack(">HB", len(items), kind)
    for item in items:
        out += struct.pack(">H", len(item)) + bytes(item)
    return out


def decode_batch(body: bytes) -> "tuple[int, list]":
    """0x0704 body -> (type, [location dict or JT808Error per item]).

    A bad item does not spoil the others: it stands in the list as its error. The
    framing itself (count, lengths) must hold, else JT808Error ``bad_body``.
    """
    _need(body, 3, "a batch")
    count, kind = struct.unpack(">HB", body[:3])
    if kind not in (BATCH_NORMAL, BATCH_BLIND_AREA):
        raise JT808Error("bad_body", "batch type %d (0 normal, 1 blind-area)" % kind)
    items = []
    p = 3
    for i in range(count):
        if p + 2 > len(body):
            raise JT808Error("bad_body", "batch says %d items, body ends at item %d"
                             % (count, i))
        n = struct.unpack(">H", body[p:p + 2])[0]
        if p + 2 + n > len(body):
            raise JT808Error("bad_body", "item %d of %d bytes runs past the body" % (i, n))
        try:
            items.append(decode_location(body[p + 2:p + 2 + n]))
        except JT808Error as exc:
            items.append(exc)
        p += 2 + n
    if p != len(body):
        raise JT808Error("bad_body", "%d bytes after the last of %d items"
                         % (len(body) - p, count))
    return kind, items
