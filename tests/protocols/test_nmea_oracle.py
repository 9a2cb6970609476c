"""protocols/nmea.py against pynmea2, an independent and widely used NMEA parser (CPython only:
tests/mpy_runner.py leaves this module out).

Three parts:

- generated sentences (hypothesis): GGA and RMC from several talkers, both hemispheres,
  1-7 decimal minutes, times with 0-3 fraction digits, dates 1980-2068, speeds and courses
  present or empty: both parsers accept them and give the same latitude and longitude to
  1e-6 degree, the same time of day and date, the same speed, satellites and HDOP;
- sentences from real receivers (tests/protocols/fixtures/nmea_receivers.txt: SiRF, u-blox,
  MediaTek, NovAtel, Garmin-era examples, and u-blox NMEA 4.10 lines at southern ports):
  the same agreement, line by line;
- where one accepts a sentence the other refuses, a table says which and why, and the test
  holds both parsers to it (a change in either shows here).
"""

from __future__ import annotations

import calendar
import datetime
from pathlib import Path
from typing import Any

import pynmea2
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from protocols import nmea

FIXTURE = Path(__file__).parent / "fixtures" / "nmea_receivers.txt"
TALKERS = ("GP", "GN", "GL", "GA", "BD", "GB", "GQ")
ORACLE = settings(max_examples=400, deadline=None, database=None)


def _digits(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    return st.text("0123456789", min_size=min_size, max_size=max_size)


@st.composite
def _coord(draw: Any, deg_max: int, width: int, hemis: str) -> str:
    deg = draw(st.integers(0, deg_max))
    minutes = draw(st.integers(0, 59))
    frac = draw(_digits(1, 7))
    return f"{deg:0{width}d}{minutes:02d}.{frac},{draw(st.sampled_from(hemis))}"


@st.composite
def _time(draw: Any) -> str:
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.just("") | _digits(1, 3).map(lambda d: "." + d))
    return f"{h:02d}{m:02d}{s:02d}{frac}"


@st.composite
def _date(draw: Any) -> str:
    # 1980-2068: where both read two-digit years alike (see DISAGREE, year_1969_1979)
    year = draw(st.integers(1980, 2068))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    return f"{day:02d}{month:02d}{year % 100:02d}"


def _decimal(whole_max: int, frac_max: int) -> st.SearchStrategy[str]:
    return st.builds(lambda w, f: f"{w}.{f}" if f else str(w), st.integers(0, whole_max),
                     _digits(0, frac_max))


@st.composite
def rmc(draw: Any) -> str:
    speed = draw(st.just("") | _decimal(999, 3))
    course = draw(st.just("") | st.builds(lambda w, f: f"{w}.{f}", st.integers(0, 359),
                                          _digits(1, 2)))
    mode = draw(st.sampled_from(["", ",,,A", ",,,D", ",,,A,V"]))
    return nmea.sentence(f"{draw(st.sampled_from(TALKERS))}RMC,{draw(_time())},A,"
                         f"{draw(_coord(89, 2, 'NS'))},{draw(_coord(179, 3, 'EW'))},{speed},"
                         f"{course},{draw(_date())}" + (mode or ",,"))


@st.composite
def gga(draw: Any) -> str:
    sats = draw(st.just("") | st.integers(0, 40).map(lambda n: f"{n:02d}"))
    hdop = draw(st.just("") | _decimal(99, 2))
    alt = draw(st.just("") | st.builds(lambda sign, d: sign + d, st.sampled_from(["", "-"]),
                                       _decimal(9000, 1)))
    return nmea.sentence(f"{draw(st.sampled_from(TALKERS))}GGA,{draw(_time())},"
                         f"{draw(_coord(89, 2, 'NS'))},{draw(_coord(179, 3, 'EW'))},"
                         f"{draw(st.integers(1, 8))},{sats},{hdop},{alt},M,-9.1,M,,")


def _ms_of_day(t: datetime.time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000


def assert_agree(line: str) -> dict[str, Any]:
    """Both parsers accept ``line`` and read the same position, time, date, speed, course,
    satellites and HDOP from it; returns ours."""
    ours = nmea.parse(line)
    theirs = pynmea2.parse(line.strip(), check=True)
    assert abs(ours["lat_e6"] / 1e6 - theirs.latitude) <= 1e-6, (line, ours, theirs.latitude)
    assert abs(ours["lon_e6"] / 1e6 - theirs.longitude) <= 1e-6, (line, ours, theirs.longitude)
    assert abs(ours["lat"] - theirs.latitude) <= 1e-6 and abs(ours["lon"] - theirs.longitude) \
        <= 1e-6
    assert ours["time_ms"] == _ms_of_day(theirs.timestamp), line
    assert ours["talker"] == theirs.talker and ours["sentence"] == theirs.sentence_type
    if ours["sentence"] == "RMC":
        day = calendar.timegm(theirs.datestamp.timetuple()) * 1000
        assert ours["ts"] == day + ours["time_ms"], line
        if theirs.spd_over_grnd is None:
            assert ours["speed_kmh"] is None
        else:
            assert abs(ours["speed_kmh"] - theirs.spd_over_grnd * nmea.KMH_PER_KNOT) < 1e-9
        assert ours["course"] == theirs.true_course
    else:
        assert ours["quality"] == theirs.gps_qual
        assert ours["satellites"] == (int(theirs.num_sats) if theirs.num_sats else None)
        assert ours["hdop"] == (float(theirs.horizontal_dil) if theirs.horizontal_dil else None)
        assert ours["alt_m"] == (float(theirs.altitude) if theirs.altitude is not None
                                 else None)
    return ours


@ORACLE
@given(rmc())
def test_nmea_oracle_generated_rmc_agree(line: str) -> None:
    assume(len(line) <= nmea.MAX_LINE)  # longer: too_long by design (DISAGREE)
    assert_agree(line)


@ORACLE
@given(gga())
def test_nmea_oracle_generated_gga_agree(line: str) -> None:
    assume(len(line) <= nmea.MAX_LINE)
    assert_agree(line)


@ORACLE
@given(rmc(), st.sampled_from(["", "\r\n", "\n"]))
def test_nmea_oracle_line_ends_and_bytes_change_nothing(line: str, end: str) -> None:
    assume(len(line) <= nmea.MAX_LINE)
    ours = assert_agree(line)
    assert nmea.parse((line + end).encode()) == ours


def _receiver_lines() -> list[str]:
    lines = [ln.strip() for ln in FIXTURE.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def test_nmea_oracle_fixture_holds_both_hemispheres_and_several_receivers() -> None:
    lines = _receiver_lines()
    parsed = [nmea.parse(ln) for ln in lines]
    assert len(lines) >= 20
    assert {p["lat_e6"] < 0 for p in parsed} == {True, False}
    assert {p["lon_e6"] < 0 for p in parsed} == {True, False}
    assert {p["talker"] for p in parsed} >= {"GP", "GN"}
    assert {p["sentence"] for p in parsed} == {"GGA", "RMC"}


@pytest.mark.parametrize("line", _receiver_lines())
def test_nmea_oracle_real_receiver_sentences_agree(line: str) -> None:
    assert_agree(line)


def test_nmea_oracle_midnight_rollover_keeps_device_time_increasing() -> None:
    before, after = (nmea.parse(ln) for ln in _receiver_lines()[-3::2])
    assert after["ts"] - before["ts"] == 1000  # 23:59:59 on 31 Dec 2026 -> 00:00:00, 2027


S = nmea.sentence
RMC_OK = "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"
# Sentences one parser takes and the other refuses (or reads differently): (name, line,
# our NMEAError reason or "ok", what pynmea2 does, why ours is right for a tracker).
DISAGREE: list[tuple[str, str, str, str, str]] = [
    ("status_void", S(RMC_OK.replace(",A,", ",V,", 1)), "no_fix", "accepted, position read",
     "RMC status V means the receiver has no valid fix: its position is stale or invented"),
    ("gga_quality_0", S("GPGGA,123519,,,,,0,00,99.99,,,,,,"), "no_fix", "accepted, latitude 0.0",
     "quality 0 is no fix; pynmea2 reads an empty latitude as 0.0, a point off Africa"),
    ("minutes_60", S(RMC_OK.replace("4807.038", "4860.000")), "bad_field",
     "accepted, 49.0", "60 minutes is not a coordinate: a corrupted field, not a position"),
    ("latitude_91", S(RMC_OK.replace("4807.038", "9107.038")), "bad_field",
     "accepted, 91.1173", "beyond the pole"),
    ("hemisphere_X", S(RMC_OK.replace(",N,", ",X,")), "bad_field", "accepted, latitude 0.0",
     "neither N nor S: the sign is unknown"),
    ("letter_in_latitude", S(RMC_OK.replace("4807.038", "48a7.038")), "bad_field",
     "accepted; .latitude raises ValueError", "refused at the line, counted, never a crash"),
    ("course_400", S(RMC_OK.replace("084.4", "400.0")), "bad_field", "accepted, 400.0",
     "a course is 0-360 degrees"),
    ("negative_speed", S(RMC_OK.replace("022.4", "-22.4")), "bad_field", "accepted, -22.4",
     "speed over ground is never negative"),
    ("feb_29_2023", S(RMC_OK.replace("230394", "290223")), "bad_field",
     "accepted, datestamp left as the text '290223'", "a date that does not exist"),
    ("hour_24", S(RMC_OK.replace("123519", "246000")), "bad_field",
     "accepted, timestamp left as the text '246000'", "a time that does not exist"),
    ("leap_second", S(RMC_OK.replace("123519", "235960").replace("230394", "311216")), "ok",
     "accepted, timestamp left as the text '235960'",
     "23:59:60 on 31 Dec 2016 was a real leap second; ours reads it as the next second"),
    ("year_1969_1979", S(RMC_OK.replace("230394", "230375")), "ok",
     "accepted, year 1975", "two-digit years: ours reads 80-99 as 19xx and 00-79 as 20xx "
     "(a GNSS date before 1980, GPS week 0, cannot be current); pynmea2 (strptime) 2075 "
     "only from 00-68"),
    ("too_long_novatel", "$GPGGA,172814.0,3723.46587704,N,12202.26957864,W,2,6,1.2,18.893,"
     "M,-25.669,M,2.0,0031*4F", "too_long", "accepted",
     "85 characters, over the standard's 82: a survey receiver's 8-decimal minutes; a "
     "tracker's u-blox or MediaTek module stays within 82, and the limit bounds the UART "
     "buffer on the board"),
    ("extra_gga_field", S("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,,"),
     "malformed", "accepted", "15 fields where GGA has 14: the line was not understood"),
    ("short_rmc", S("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394"), "malformed",
     "accepted", "RMC without its magnetic variation fields is not a 0183 RMC"),
    ("gsv", "$GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00*74",
     "unsupported", "accepted", "satellites in view carry no position: counted and skipped"),
]


def _pynmea2_outcome(line: str) -> str:
    try:
        pynmea2.parse(line, check=True)
    except pynmea2.ParseError:
        return "refused"
    return "accepted"


@pytest.mark.parametrize(("name", "line", "ours", "theirs", "why"), DISAGREE,
                         ids=[d[0] for d in DISAGREE])
def test_nmea_oracle_documented_disagreements_hold(name: str, line: str, ours: str,
                                                   theirs: str, why: str) -> None:
    assert why and _pynmea2_outcome(line) == "accepted"
    try:
        got = nmea.parse(line)
    except nmea.NMEAError as exc:
        assert exc.reason == ours, (name, exc)
        return
    assert ours == "ok", name
    parsed = pynmea2.parse(line, check=True)
    if name == "leap_second":
        assert parsed.timestamp == "235960" and got["time_ms"] == 86_400_000
        assert got["ts"] == calendar.timegm((2017, 1, 1, 0, 0, 0)) * 1000
    else:
        assert name == "year_1969_1979" and parsed.datestamp.year == 1975
        assert got["ts"] // 86_400_000 == (datetime.date(2075, 3, 23)
                                           - datetime.date(1970, 1, 1)).days


@pytest.mark.parametrize("line", [
    "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # no checksum
    S(RMC_OK)[:-2] + "00",  # wrong checksum
])
def test_nmea_oracle_both_refuse_a_missing_or_wrong_checksum(line: str) -> None:
    assert _pynmea2_outcome(line) == "refused"
    with pytest.raises(nmea.NMEAError) as info:
        nmea.parse(line)
    assert info.value.reason in ("malformed", "bad_checksum")
