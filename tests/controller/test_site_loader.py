"""The site description loader: the demo site, exact coordinates, and every refusal naming its
line. Bad files are made from the demo file by replacing one line, so the expected line is
the line that was changed (found, not hard-coded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from controller.site import (
    DEMO_SITE_PATH,
    SiteError,
    current_site,
    load_site,
    parse_site,
    set_site,
)
from controller.site.geometry import centroid, contains, distance_m, in_corridor

DEMO = DEMO_SITE_PATH.read_text(encoding="utf-8")


def _edit(old: str, new: str) -> tuple[str, int]:
    """The demo text with the first line holding ``old`` changed; that line's number."""
    lines = DEMO.splitlines()
    for i, line in enumerate(lines):
        if old in line:
            lines[i] = line.replace(old, new)
            return "\n".join(lines) + "\n", i + 1
    raise AssertionError(f"{old!r} is not in the demo site")


def test_load_site_demo_has_the_zones_corridors_and_weighbridges_of_the_contract() -> None:
    site = load_site(DEMO_SITE_PATH)
    kinds = {z.kind for z in site.zones.values()}
    assert {"port_area", "berth", "silo", "bonded_yard", "gate", "weighbridge", "parking",
            "rail_yard", "destination"} <= kinds
    assert site.devices["wb-in"].role == "in" and site.devices["wb-out"].role == "out"
    assert site.weighbridge("out") is site.devices["wb-out"]
    assert len(site.corridors) == 2
    for c in site.corridors.values():
        assert 6 <= len(c.points) <= 15
        assert len(c.widths_m) == len(c.points) - 1
        assert all(60 <= w <= 120 for w in c.widths_m)


def test_load_site_demo_weighbridges_are_small_decks_inside_the_gate() -> None:
    site = load_site(DEMO_SITE_PATH)
    gate = site.zones["gate"]
    for wb in ("wb-in", "wb-out"):
        poly = site.zones[wb].polygon
        assert all(contains(gate, *p) for p in poly)
        sides = sorted({round(distance_m(poly[i], poly[(i + 1) % 4])) for i in range(4)})
        assert 4 <= sides[0] <= 7 and 18 <= sides[-1] <= 22, sides


def test_load_site_demo_destinations_are_20_to_60_km_from_the_gate() -> None:
    site = load_site(DEMO_SITE_PATH)
    gate = centroid(site.zones["gate"])
    dests = site.zones_of_kind("destination")
    assert len(dests) == 2
    for z in dests:
        assert 20_000 <= distance_m(gate, centroid(z)) <= 60_000, z.id
    for c in site.corridors.values():
        # the corridor runs from the out deck to inside its destination
        assert contains(site.zones["wb-out"], *c.points[0])
        assert contains(site.zones[c.to_zone], *c.points[-1])
        assert in_corridor(c, *centroid(site.zones["wb-out"]))


def test_load_site_coordinates_are_exact_micro_degrees_of_the_text() -> None:
    site = load_site(DEMO_SITE_PATH)
    assert site.corridors["c-feed-mill"].points[0] == (38_933_725, 121_647_515)
    # 0.1 + 0.2 style float noise must not leak in: 39.1385 is 39138500 exactly
    assert site.corridors["c-feed-mill"].points[-1] == (39_138_500, 121_521_500)


def test_load_site_json_gives_the_same_site_as_yaml(tmp_path: Path) -> None:
    path = tmp_path / "site.json"
    path.write_text(json.dumps(yaml.safe_load(DEMO), indent=1))
    assert load_site(path) == load_site(DEMO_SITE_PATH)


def test_load_site_one_width_for_all_segments_and_a_closed_ring_are_accepted() -> None:
    text, _ = _edit("widths_m: [60, 60, 80, 100, 120, 120, 120, 100, 80]", "width_m: 90")
    text = text.replace("      - [38.9280, 121.6630]\n",
                        "      - [38.9280, 121.6630]\n      - [38.9280, 121.6466]\n", 1)
    site = parse_site(text)
    assert site.corridors["c-feed-mill"].widths_m == (90.0,) * 9
    assert len(site.zones["port"].polygon) == 4


BAD = [
    # (old, new, words the message must hold)
    ("[39.050000, 121.570000]", "[91.2, 121.570000]",
     "corridor 'c-feed-mill' point 7: latitude 91.2 is outside -90..90"),
    ("[39.050000, 121.570000]", "[39.05, 181]",
     "corridor 'c-feed-mill' point 7: longitude 181 is outside -180..180"),
    ("[39.050000, 121.570000]", "[39.05N, 121.57]", "expected a number, not '39.05N'"),
    ("kind: silo", "kind: silos", "zone 'silos': kind 'silos' is not one of"),
    ("id: truck-park", "id: gate", "zone 'gate': id 'gate' is used twice"),
    ("max_minutes: 60", "max_minute: 60", "unknown key max_minute"),
    ("max_minutes: 60", "max_minutes: sixty", "max_minutes"),
    ("[60, 60, 80, 100, 120, 120, 120, 100, 80]", "[60, 60, 80]",
     "widths_m has 3 widths for 9 segments"),
    ("[60, 60, 80, 100, 120, 120, 120, 100, 80]", "[60, 60, 80, 100, 0, 120, 120, 100, 80]",
     "width 5: 0 m"),
    ("from_zone: gate", "from_zone: gates", "from_zone 'gates' is not a zone of this site"),
    ("zone: wb-out", "zone: wb-outt", "device 'wb-out': zone 'wb-outt' is not a zone"),
    ("role: in", "role: inbound", "a weighbridge's role is 'in' or 'out', not 'inbound'"),
    ("  - id: berth-1", "  - id: [berth-1", "not valid YAML/JSON"),
    ("    name: Berth 1", "    kind: berth", "key 'kind' is given twice"),
    ("      - [38.9320, 121.6520]", "      - [38.9305, 121.6555]",
     "zone 'silos': the polygon crosses itself"),
]


@pytest.mark.parametrize(("old", "new", "words"), BAD, ids=[b[2][:30] for b in BAD])
def test_load_site_error_names_the_line_and_the_fault(tmp_path: Path, old: str, new: str,
                                                      words: str) -> None:
    text, line = _edit(old, new)
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(SiteError) as info:
        load_site(path)
    assert words in str(info.value)
    assert str(info.value).startswith(f"{path} line {info.value.line}: ")
    # the duplicate key, the bow-tie and the YAML syntax error are reported on the line where
    # the fault shows; all others on the edited line itself
    assert abs(info.value.line - line) <= 2, (info.value.line, line)
    if "crosses" not in words and "YAML" not in words:
        assert info.value.line == line


def test_load_site_error_too_few_polygon_points() -> None:
    text = DEMO.replace("      - [38.9372, 121.6630]\n      - [38.9280, 121.6630]\n", "", 1)
    with pytest.raises(SiteError, match="a polygon needs at least 3 points, it has 2") as info:
        parse_site(text, "site.yaml")
    assert info.value.line == DEMO.splitlines().index("    polygon:", 0) + 1 + 1


def test_load_site_error_missing_file_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="no such file"):
        load_site(tmp_path / "nope.yaml")
    (tmp_path / "empty.yaml").write_text("")
    with pytest.raises(SiteError, match="empty") as info:
        load_site(tmp_path / "empty.yaml")
    assert info.value.line == 1
    assert isinstance(info.value, ValueError)


def test_current_site_env_file_override_and_reset(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTWATCH_SITE_FILE", raising=False)
    monkeypatch.setenv("PORTWATCH_SITE", "dalian-north")  # a site id, not a file: ignored
    set_site(None)
    assert current_site().id == "dalian-north"
    assert "c-feed-mill" in current_site().corridors
    other = tmp_path / "other.yaml"
    other.write_text(DEMO.replace("id: dalian-north", "id: other-port"))
    monkeypatch.setenv("PORTWATCH_SITE", str(other))
    assert current_site().id == "other-port"
    monkeypatch.setenv("PORTWATCH_SITE_FILE", str(DEMO_SITE_PATH))
    assert current_site().id == "dalian-north"
    try:
        set_site(other)
        assert current_site().id == "other-port"
        bad = tmp_path / "bad.yaml"
        bad.write_text(_edit("role: in", "role: x")[0])
        with pytest.raises(SiteError, match=r"bad\.yaml line"):
            set_site(bad)
        assert current_site().id == "other-port"  # a bad file leaves the running site alone
    finally:
        set_site(None)
    assert current_site().id == "dalian-north"
