"""The grain lab analyzer's result lines: parse and build. Pure, MicroPython-compatible.

Hand-written rather than a library: the parser runs on the edge agent under MicroPython
(96 KiB heap), where no CSV or datetime module exists. One result per line (ASCII, CR LF)::

    RES,<sample_id>,<sampled UTC ISO>,<moisture %>,<basis wet|dry>,<protein %>,
        <impurity %>,<test weight kg/hl>,<calibration id>,<outlier 0|1>,<findings>*hh

(one line; wrapped here). ``hh`` is the XOR of every byte before the ``*``, in
two hex digits, as NMEA. ``sampled`` is ``YYYY-MM-DDTHH:MM:SSZ``. The percentages and
the test weight have at most one decimal (the analyzer's resolution): they become
integers, per mille (``13.5`` % -> 135) and g/l (``78.4`` kg/hl -> 784). ``findings``
is empty or ``name:count:mass_g`` items joined by ``;`` (a species' latin name with
spaces, the seeds counted, the sample's mass in grams).

``parse`` returns the ``sample`` body (protocols/bodies.py) or raises ``LabError`` with a
short ``reason`` the driver counts: ``malformed``, ``bad_checksum``, ``bad_field``,
``unsupported`` (a line that is not a result: the analyzer's status lines).
"""

MAX_LINE = 480
MAX_ID = 40
MAX_FINDINGS = 16
MAX_NAME = 64
BASES = ("wet", "dry")
_DIM = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class LabError(ValueError):
    """A line that is not a valid result; ``reason`` names the count it goes to."""

    def __init__(self, reason, detail=""):
        super().__init__(reason + (": " + detail if detail else ""))
        self.reason = reason


def checksum(text):
    """XOR of the bytes of ``text`` (bytes or str)."""
    if isinstance(text, str):
        text = text.encode()
    x = 0
    for ch in text:
        x ^= ch
    return x


def _tenths(text, name):
    """``12``, ``12.3`` -> 120, 123: a decimal with at most one decimal, as tenths."""
    dot = text.find(".")
    whole, frac = (text, "") if dot < 0 else (text[:dot], text[dot + 1:])
    if not whole or not whole.isdigit() or len(frac) > 1 or (frac and not frac.isdigit()) \
            or len(whole) > 4:
        raise LabError("bad_field", "%s %r is not a decimal with at most one decimal"
                       % (name, text))
    return int(whole) * 10 + (int(frac) if frac else 0)


def _num(text, lo, hi):
    if len(text) != hi - lo or not text[lo:hi].isdigit():
        return -1
    return int(text[lo:hi])


def epoch_ms(iso):
    """``YYYY-MM-DDTHH:MM:SSZ`` -> ms since 1970 (UTC); LabError when it is not one."""
    if len(iso) != 20 or iso[4] != "-" or iso[7] != "-" or iso[10] != "T" or iso[13] != ":" \
            or iso[16] != ":" or iso[19] != "Z":
        raise LabError("bad_field", "sampled %r is not YYYY-MM-DDTHH:MM:SSZ" % iso)
    y, m, d = _num(iso[:4], 0, 4), _num(iso[5:7], 0, 2), _num(iso[8:10], 0, 2)
    hh, mm, ss = _num(iso[11:13], 0, 2), _num(iso[14:16], 0, 2), _num(iso[17:19], 0, 2)
    leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
    if y < 1970 or not 1 <= m <= 12 or hh < 0 or hh > 23 or mm < 0 or mm > 59 or ss < 0 \
            or ss > 59 or not 1 <= d <= _DIM[m - 1] + (1 if m == 2 and leap else 0):
        raise LabError("bad_field", "sampled %r is not a date and time" % iso)
    # days from the civil date (H. Hinnant's algorithm), without datetime
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    return ((days * 24 + hh) * 60 + mm) * 60000 + ss * 1000


def _findings(text):
    out = []
    if not text:
        return out
    for item in text.split(";"):
        parts = item.split(":")
        if len(parts) != 3 or not parts[0] or len(parts[0]) > MAX_NAME \
                or not parts[1].isdigit() or not parts[2].isdigit():
            raise LabError("bad_field", "finding %r is not name:count:mass_g" % item)
        out.append([parts[0], int(parts[1]), int(parts[2])])
    if len(out) > MAX_FINDINGS:
        raise LabError("bad_field", "more than %d findings" % MAX_FINDINGS)
    return out


def parse(line):
    """One line (bytes or str, without CR LF) -> the ``sample`` body; LabError if not."""
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except UnicodeError:
            raise LabError("malformed", "not ASCII text")
    star = line.rfind("*")
    if star < 0 or len(line) - star != 3:
        if line.startswith("RES,"):
            raise LabError("malformed", "no *hh checksum at the end")
        raise LabError("unsupported", line[:8])
    try:
        want = int(line[star + 1:], 16)
    except ValueError:
        raise LabError("malformed", "checksum %r is not hex" % line[star + 1:])
    if checksum(line[:star]) != want:
        raise LabError("bad_checksum")
    f = line[:star].split(",")
    if f[0] != "RES":
        raise LabError("unsupported", f[0][:8])
    if len(f) != 11:
        raise LabError("malformed", "%d fields, a result has 11" % len(f))
    sid = f[1]
    if not sid or len(sid) > MAX_ID:
        raise LabError("bad_field", "sample id must be 1-%d characters" % MAX_ID)
    if f[4] not in BASES:
        raise LabError("bad_field", "basis %r is neither wet nor dry" % f[4])
    if f[9] not in ("0", "1"):
        raise LabError("bad_field", "outlier %r is neither 0 nor 1" % f[9])
    cal = f[8]
    if not cal or len(cal) > MAX_ID:
        raise LabError("bad_field", "calibration id must be 1-%d characters" % MAX_ID)
    moisture = _tenths(f[3], "moisture")
    protein = _tenths(f[5], "protein")
    impurity = _tenths(f[6], "impurity")
    for name, v in (("moisture", moisture), ("protein", protein), ("impurity", impurity)):
        if v > 1000:
            raise LabError("bad_field", "%s over 100 %%" % name)
    return {"sample_id": sid, "sampled_ts": epoch_ms(f[2]), "moisture_pm": moisture,
            "basis": f[4], "protein_pm": protein, "impurity_pm": impurity,
            "test_weight_g_per_l": _tenths(f[7], "test weight"), "calibration_id": cal,
            "outlier": f[9] == "1", "findings": _findings(f[10])}


def _dec(tenths):
    return "%d.%d" % (tenths // 10, tenths % 10)


def build(sample_id, sampled_iso, moisture_pm, basis, protein_pm, impurity_pm,
          test_weight_g_per_l, calibration_id, outlier, findings):
    """The line (str, without CR LF) for one result: the emulator's and the tests' side."""
    fs = ";".join("%s:%d:%d" % (n, c, g) for n, c, g in findings)
    body = "RES,%s,%s,%s,%s,%s,%s,%s,%s,%d,%s" % (
        sample_id, sampled_iso, _dec(moisture_pm), basis, _dec(protein_pm), _dec(impurity_pm),
        _dec(test_weight_g_per_l), calibration_id, 1 if outlier else 0, fs)
    return "%s*%02X" % (body, checksum(body))
