"""Lab analyzer result lines (protocols/labline.py): build, parse, checksum, bad fields;
the body each line gives is a valid ``sample`` body. Runs under pytest and MicroPython."""

from protocols import bodies, labline
from shared_support import raises

T0_MS = 1796083200000  # 2026-12-01T00:00:00Z


def _line(**kw):
    args = dict(sample_id="S-0001", sampled_iso="2026-12-01T00:10:05Z", moisture_pm=135,
                basis="wet", protein_pm=118, impurity_pm=9, test_weight_g_per_l=784,
                calibration_id="CAL-2026-11", outlier=False, findings=[])
    args.update(kw)
    return labline.build(**args)


def _reason(line):
    try:
        labline.parse(line)
    except labline.LabError as exc:
        return exc.reason
    return None


def test_labline_round_trip_gives_valid_sample_body():
    line = _line(findings=[["Ambrosia artemisiifolia", 3, 1000]], outlier=True)
    body = labline.parse(line.encode())
    assert body == {"sample_id": "S-0001", "sampled_ts": T0_MS + 605000, "moisture_pm": 135,
                    "basis": "wet", "protein_pm": 118, "impurity_pm": 9,
                    "test_weight_g_per_l": 784, "calibration_id": "CAL-2026-11",
                    "outlier": True, "findings": [["Ambrosia artemisiifolia", 3, 1000]]}
    assert bodies.check("evt", "sample", body) is None


def test_labline_decimals_become_exact_integers():
    line = "RES,S-2,2024-02-29T23:59:59Z,14,dry,12.5,0.3,80.0,C1,0,"
    line = "%s*%02X" % (line, labline.checksum(line))
    body = labline.parse(line)
    assert (body["moisture_pm"], body["protein_pm"], body["impurity_pm"],
            body["test_weight_g_per_l"]) == (140, 125, 3, 800)
    assert body["sampled_ts"] == 1709251199000  # a leap day
    assert body["findings"] == [] and body["basis"] == "dry"


def test_labline_bad_checksum_is_refused():
    line = _line()
    bad = line[:-2] + ("00" if line[-2:] != "00" else "01")
    assert _reason(bad) == "bad_checksum"
    # one flipped digit in a value: the checksum catches it
    assert _reason(line.replace("13.5", "18.5")) == "bad_checksum"


def test_labline_malformed_and_unsupported_lines_are_told_apart():
    assert _reason("RES,S-1,2026-12-01T00:00:00Z") == "malformed"
    assert _reason("STATUS,READY") == "unsupported"
    body = "STA,warming"
    assert _reason("%s*%02X" % (body, labline.checksum(body))) == "unsupported"
    body = "RES,S-1,2026-12-01T00:00:00Z,1,wet"
    assert _reason("%s*%02X" % (body, labline.checksum(body))) == "malformed"
    assert _reason(b"RES,\xff\xfe*00") == "malformed"


def test_labline_bad_fields_are_refused():
    def fixed(text):
        star = text.rfind("*")
        return "%s*%02X" % (text[:star], labline.checksum(text[:star]))

    good = _line()
    for old, new in (("wet", "damp"), ("13.5", "13.55"), ("13.5", "-1"),
                     ("2026-12-01T00:10:05Z", "2026-02-30T00:10:05Z"),
                     ("2026-12-01T00:10:05Z", "2026-12-01 00:10:05"),
                     ("CAL-2026-11,0,", "CAL-2026-11,2,"), ("13.5", "100.1")):
        assert _reason(fixed(good.replace(old, new))) == "bad_field", (old, new)
    assert _reason(fixed(good[:-3] + "Avena sterilis:x:1000*00")) == "bad_field"
    assert _reason(fixed(good[:-3] + "Avena sterilis:1*00")) == "bad_field"


def test_labline_epoch_ms_matches_known_instants():
    assert labline.epoch_ms("1970-01-01T00:00:00Z") == 0
    assert labline.epoch_ms("2026-12-01T00:00:00Z") == T0_MS
    assert raises(labline.LabError, labline.epoch_ms, "2026-13-01T00:00:00Z")


def test_sample_body_check_refuses_floats_and_bad_findings():
    body = labline.parse(_line())
    assert bodies.check("evt", "sample", dict(body, moisture_pm=13.5)) is not None
    assert bodies.check("evt", "sample", dict(body, outlier=0)) is not None
    assert bodies.check("evt", "sample", dict(body, findings=[["x", 1]])) is not None
    assert bodies.check("evt", "sample", dict(body, impurity_pm=1001)) is not None
    assert bodies.check("evt", "sample", dict(body, sample_id="")) is not None
