"""Fuzz the NMEA parser and line splitter (CPython + hypothesis; the shared tests are plain).

Garbage of every kind raises ``NMEAError`` and nothing else; what parses obeys the
ranges of the sentence; generated valid sentences parse to what an independent oracle
(``fractions`` and ``datetime``) says; the splitter gives the same lines however a
stream is chunked.
"""

from __future__ import annotations

import calendar
import datetime
import itertools
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import nmea

SEEDS = (
    "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47",
    "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A",
    "$GNRMC,062735.00,A,3854.9284,N,12139.1247,E,23.5,276.3,120325,,,A,V*09",
    "$BDGGA,062735.00,3854.9284,N,12139.1247,E,1,14,0.8,12.6,M,-9.1,M,,*50",
)
ALPHABET = "0123456789.,-+*$ABCDEGHLMNPRSVWXYZabcdefnx eE_\r\n\t\x00\xff\u00e9"
FUZZ = settings(max_examples=500, deadline=None, database=None)


def _outcome(line: Any) -> dict[str, Any] | str:
    """The parsed dict, or the reason; any exception other than NMEAError fails the test."""
    try:
        return nmea.parse(line)
    except nmea.NMEAError as exc:
        assert exc.reason in ("too_long", "bad_char", "malformed", "bad_checksum",
                              "unsupported", "bad_field", "no_fix")
        return exc.reason


def _check_ranges(fix: dict[str, Any]) -> None:
    assert -90_000_000 <= fix["lat_e6"] <= 90_000_000
    assert -180_000_000 <= fix["lon_e6"] <= 180_000_000
    assert 0 <= fix["time_ms"] <= 86_400_999
    if fix["sentence"] == "RMC":
        assert 315_532_800_000 <= fix["ts"] < 3_471_292_800_000  # 1980 .. 2080
        assert fix["speed_kmh"] is None or fix["speed_kmh"] >= 0
        assert fix["course"] is None or 0 <= fix["course"] <= 360
    else:
        assert 1 <= fix["quality"] <= 8


@FUZZ
@given(st.binary(max_size=120))
def test_nmea_random_bytes_raise_only_nmea_error(data: bytes) -> None:
    result = _outcome(data)
    assert isinstance(result, str) or data.startswith(b"$")


@FUZZ
@given(st.text(max_size=100) | st.text(ALPHABET, max_size=90))
def test_nmea_random_text_raises_only_nmea_error(text: str) -> None:
    _outcome(text)
    _outcome("$" + text)


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A real sentence with characters replaced, inserted or cut, then signed again."""
    body = list(draw(st.sampled_from(SEEDS))[1:-3])
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        ch = draw(st.sampled_from(ALPHABET))
        if op == "insert":
            body.insert(at, ch)
        elif at < len(body):
            if op == "replace":
                body[at] = ch
            else:
                del body[at]
    return nmea.sentence("".join(body))


@FUZZ
@given(_mutated())
def test_nmea_mutated_sentences_with_valid_checksums_parse_within_range_or_fail_cleanly(
        line: str) -> None:
    result = _outcome(line)
    if isinstance(result, dict):
        _check_ranges(result)
        assert _outcome(line.encode()) == result  # bytes and str read alike


@FUZZ
@given(st.sampled_from(SEEDS), st.text(ALPHABET + "0123456789ABCDEFabcdef", max_size=4))
def test_nmea_any_checksum_text_is_checked_cleanly(seed: str, tail: str) -> None:
    result = _outcome(seed[:-2] + tail)
    assert isinstance(result, str) or tail.upper() == seed[-2:]


def _coord_text(deg: int, minutes: Fraction, width: int, places: int) -> str:
    whole = int(minutes)
    frac = int((minutes - whole) * 10**places)
    text = f"{deg:0{width}d}{whole:02d}"
    return text + (f".{frac:0{places}d}" if places else "")


@st.composite
def _valid_rmc(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    places = draw(st.integers(min_value=0, max_value=5))
    lat_d = draw(st.integers(min_value=0, max_value=89))
    lon_d = draw(st.integers(min_value=0, max_value=179))
    lat_m = Fraction(draw(st.integers(min_value=0, max_value=60 * 10**places - 1)), 10**places)
    lon_m = Fraction(draw(st.integers(min_value=0, max_value=60 * 10**places - 1)), 10**places)
    ns, ew = draw(st.sampled_from("NS")), draw(st.sampled_from("EW"))
    when = draw(st.datetimes(min_value=datetime.datetime(1980, 1, 1),
                             max_value=datetime.datetime(2079, 12, 31, 23, 59, 59)))
    when = when.replace(microsecond=when.microsecond // 10_000 * 10_000)
    knots = draw(st.integers(min_value=0, max_value=9999))
    body = (f"GNRMC,{when:%H%M%S}.{when.microsecond // 10_000:02d},A,"
            f"{_coord_text(lat_d, lat_m, 2, places)},{ns},"
            f"{_coord_text(lon_d, lon_m, 3, places)},{ew},"
            f"{knots // 10}.{knots % 10},,{when:%d%m%y},,,A")
    half_up = Fraction(1, 10**9)  # round() halves to even; the parser rounds halves up
    want = {
        "lat_e6": (1 if ns == "N" else -1) * round((lat_d + lat_m / 60) * 10**6 + half_up),
        "lon_e6": (1 if ew == "E" else -1) * round((lon_d + lon_m / 60) * 10**6 + half_up),
        # exact integer ms: float timestamp() * 1000 can land 1 ms short
        "ts": calendar.timegm(when.timetuple()) * 1000 + when.microsecond // 1000,
        "speed_kmh": knots / 10 * 1.852,
    }
    return nmea.sentence(body), want


@FUZZ
@given(_valid_rmc())
def test_nmea_valid_rmc_matches_an_independent_oracle(case: tuple[str, dict[str, Any]]) -> None:
    line, want = case
    got = nmea.parse(line)
    _check_ranges(got)
    assert (got["lat_e6"], got["lon_e6"], got["ts"]) == (want["lat_e6"], want["lon_e6"],
                                                         want["ts"])
    assert abs(got["speed_kmh"] - want["speed_kmh"]) < 1e-9
    assert abs(got["lat"] - got["lat_e6"] / 1e6) < 1e-12


def _reference_split(stream: bytes, limit: int) -> tuple[list[bytes], int]:
    *complete, tail = stream.split(b"\n")
    discarded = sum(len(seg) > limit + 1 for seg in [*complete, tail])
    lines = [seg[:-1] if seg.endswith(b"\r") else seg for seg in complete if len(seg) <= limit + 1]
    return [ln for ln in lines if ln], discarded


@FUZZ
@given(parts=st.lists(st.one_of(st.sampled_from([s.encode() + b"\r\n" for s in SEEDS]),
                                st.binary(max_size=150),
                                st.sampled_from([b"\n", b"\r\n", b"\r", b"$"])), max_size=12),
       cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=20))
def test_nmea_splitter_equals_reference_however_chunked(parts: list[bytes],
                                                        cuts: list[int]) -> None:
    stream = b"".join(parts)
    splitter = nmea.LineSplitter()
    got = []
    bounds = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    for a, b in itertools.pairwise(bounds):
        got.extend(splitter.feed(stream[a:b]))
    want, discarded = _reference_split(stream, nmea.MAX_LINE)
    assert got == want
    assert splitter.discarded == discarded
    for line in got:
        _outcome(line)
