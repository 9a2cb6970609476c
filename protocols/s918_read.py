"""AAR S-918 railcar tag: the part the rail reader's agent runs, tag by tag, on its 96 KiB
heap (protocols/s918.py holds the layout, the checksum rule, ``decode`` and ``encode``, and
re-exports these). Apart so that the agent does not load the encoder and the dict decoder
(about 2 KB of its heap). Pure and MicroPython-compatible.
"""

GROUP_LOCOMOTIVE = 5
FRAME1 = 3
FRAME2 = 1


def initial_text(code: int) -> str:
    """The owner's initial of a 19-bit code, trailing blanks removed."""
    n4 = code % 27
    n3 = (code // 27) % 27
    n2 = (code // 729) % 27
    n1 = code // 19683
    out = chr(65 + n1) if n1 < 26 else "?"
    for n in (n2, n3, n4):
        out += " " if n == 0 else chr(64 + n)
    return out.rstrip()


def _bits(b: "bytes | bytearray", lo: int, n: int) -> int:
    # small-int arithmetic on the 16 bytes: no big-int temporaries (the agent's heap)
    v = 0
    for i in range(lo, lo + n):
        v = (v << 1) | ((b[i >> 3] >> (7 - (i & 7))) & 1)
    return v


def decode_into(b: "bytes | bytearray", out: list) -> bool:  # type: ignore[type-arg]
    """Decode the 16 raw bytes of a tag into ``out[0:6]``: group, initial code (19 bits:
    ``initial_text``), number, side, length_dm, axles; False (``out`` unchanged) when the
    frame markers or checksums fail. Allocates nothing: for the agent, tag by tag."""
    if len(b) != 16 or _bits(b, 62, 2) != FRAME1 or _bits(b, 126, 2) != FRAME2:
        return False
    for half in (0, 1):
        h = 64 * half
        e = o = 0
        for i in range(h + 5, h + 60, 2):
            e ^= (b[i >> 3] >> (7 - (i & 7))) & 1
        for i in range(h + 6, h + 59, 2):
            o ^= (b[i >> 3] >> (7 - (i & 7))) & 1
        if _bits(b, h + 60, 2) != (-(2 * e + o)) % 4:
            return False
    out[0] = _bits(b, 0, 5)
    out[1] = _bits(b, 7, 19)
    out[2] = _bits(b, 26, 20)
    out[3] = _bits(b, 46, 1)
    out[4] = (_bits(b, 94, 3) << 9) | _bits(b, 47, 9)
    out[5] = ((_bits(b, 56, 4) << 1) | _bits(b, 64, 1)) + 1
    return True
