"""The AEI rail reader's line protocol (tools/emulators/rail_reader.py speaks it, the rail
driver reads it); pure and MicroPython-compatible.

ASCII lines over TCP, each ``<payload>*<hh>`` ended by CR LF, where ``hh`` is the XOR of
every byte of the payload (the characters before ``*``) as two upper-case hex digits (as
NMEA's, without the ``$``). Per train, after it has passed the reader:

  TRN,<train>,<ts_ms>,<I|O>,<speed_dkmh>,<axles>   header: the reader's train id, the
      time of the first axle (UTC epoch ms), direction (I into the port, O out of it),
      the radar's speed (0.1 km/h) and the wheel sensors' axle count
  TAG,<seq>,<tag_hex>,<antenna>,<weight_kg>        one per tag read, in the order of the
      train: seq from 1, the 32 hex digits of the S-918 tag as read, the antenna (1 or
      2: the side of the track), the in-motion scale's weight of that car (empty: none)
  END,<train>,<ts_ms>,<tags>                       the last axle's time and the number
      of TAG lines sent for the train

A raw tag that fails its S-918 checks is still sent (the reader does not judge it).
"""

MAX_LINE = 96


class AeiError(ValueError):
    """A line that is not usable; ``reason``: malformed, bad_checksum, bad_field,
    unsupported."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__("%s: %s" % (reason, detail) if detail else reason)
        self.reason = reason


def xor(payload: "bytes | str") -> int:
    """The XOR of the bytes of ``payload`` (bytes or str)."""
    if isinstance(payload, str):
        payload = payload.encode()
    x = 0
    for b in payload:
        x ^= b
    return x


def frame(payload: str) -> bytes:
    """The line (bytes, with CR LF) carrying ``payload`` (str)."""
    return ("%s*%02X\r\n" % (payload, xor(payload))).encode()


def _int(s: str, low: int, high: int) -> int:
    try:
        v = int(s)
    except ValueError:
        raise AeiError("bad_field", "not an integer: %r" % s)
    if not low <= v <= high:
        raise AeiError("bad_field", "%d not in %d-%d" % (v, low, high))
    return v


def parse(line: "bytes | str") -> tuple:  # type: ignore[type-arg]
    """A line (bytes or str, without CR LF) as a tuple:

    ("TRN", train, ts_ms, "in"|"out", speed_dkmh, axles), ("TAG", seq, tag_hex, antenna,
    weight_kg|None), ("END", train, ts_ms, tags). Raise AeiError otherwise.
    """
    if isinstance(line, bytes):
        try:
            line = line.decode()
        except UnicodeError:
            raise AeiError("malformed", "not ASCII")
    star = line.rfind("*")
    if star < 0 or len(line) - star != 3 or len(line) > MAX_LINE:
        raise AeiError("malformed", "no *hh checksum at the end")
    payload = line[:star]
    try:
        want = int(line[star + 1:], 16)
    except ValueError:
        raise AeiError("malformed", "checksum is not hex")
    if xor(payload) != want:
        raise AeiError("bad_checksum")
    f = payload.split(",")
    kind = f[0]
    if kind == "TRN":
        if len(f) != 6 or not f[1] or f[3] not in ("I", "O"):
            raise AeiError("malformed", "TRN,<train>,<ts_ms>,<I|O>,<speed>,<axles>")
        return ("TRN", f[1], _int(f[2], 0, 1 << 62), "in" if f[3] == "I" else "out",
                _int(f[4], 0, 5000), _int(f[5], 0, 4000))
    if kind == "TAG":
        if len(f) != 5 or len(f[2]) != 32:
            raise AeiError("malformed", "TAG,<seq>,<32 hex>,<antenna>,<weight_kg>")
        weight = _int(f[4], 0, 500000) if f[4] else None
        return ("TAG", _int(f[1], 1, 100000), f[2], _int(f[3], 1, 2), weight)
    if kind == "END":
        if len(f) != 4 or not f[1]:
            raise AeiError("malformed", "END,<train>,<ts_ms>,<tags>")
        return ("END", f[1], _int(f[2], 0, 1 << 62), _int(f[3], 0, 100000))
    raise AeiError("unsupported", kind[:8])
