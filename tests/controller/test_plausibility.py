"""Physically impossible weighings and impossible device times: the pure checks."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from controller.errors import ConfigError
from controller.facts import Fact
from controller.plausibility import (
    DEFAULT_CAPACITY_KG,
    FLAGS,
    Limits,
    Settings,
    event_time_flags,
    limits_for,
    weighing_flags,
)

T0 = 1_764_072_000_000
SIM = Limits(capacity_kg=80_000, division_kg=20)  # portwatch-sim's registration


def weighing(gross: int = 45_240, tare: int = 15_000, net: int | None = None, *,
             division: int = 20, plate: str = "辽B12345", ts: int = T0,
             received: int = T0 + 300, limits: Limits | None = SIM) -> Fact:
    body = {"plate": plate, "gross_kg": gross, "tare_kg": tare,
            "net_kg": gross - tare if net is None else net, "division_kg": division,
            "stable_ms": 3000, "arrived_ts": ts - 8000}
    return Fact("wb-1", 1, 1, "weighing", ts, received, body, limits)


def flags(fact: Fact) -> list[str]:
    return list(weighing_flags(fact))


def test_a_sound_weighing_has_no_flag() -> None:
    assert weighing_flags(weighing()) == {}
    assert weighing_flags(weighing(limits=None)) == {}  # defaults: no registration known


def test_each_impossible_figure_is_named() -> None:
    assert flags(weighing(-20, 0, -20)) == ["negative_weight", "tare_above_gross",
                                            "net_not_positive"]
    assert flags(weighing(20_000, -40, 20_040)) == ["negative_weight"]
    assert flags(weighing(10_000, 15_000)) == ["tare_above_gross", "net_not_positive"]
    assert flags(weighing(45_240, 15_000, 30_000)) == ["net_mismatch"]
    assert flags(weighing(80_020, 15_000)) == ["over_capacity"]
    assert flags(weighing(45_250, 15_000)) == ["off_division"]
    assert flags(weighing(45_240, 15_000, division=10)) == ["division_mismatch"]
    absurd = weighing_flags(weighing(10**15, 15_000))
    assert list(absurd) == ["over_capacity"]
    assert absurd["over_capacity"] == ("gross 1000000000000000 kg is above the capacity of "
                                       "80000 kg")


def test_division_is_the_registered_one_not_the_one_the_device_claims() -> None:
    # a device that says its division is 1 kg cannot make 45 241 kg look like a reading
    found = weighing_flags(weighing(45_241, 15_001, division=1))
    assert list(found) == ["off_division", "division_mismatch"]
    assert found["off_division"] == ("gross 45241 kg, tare 15001 kg are not a multiple of "
                                     "the 20 kg division")
    # without a registered division, the one sent is all there is to check against
    assert flags(weighing(45_250, 15_000, limits=Limits())) == ["off_division"]


@pytest.mark.parametrize("plate", ["辽B12345", "京AD12345", "粤Z1234港", "辽B1234挂", "沪A8K3Q9"])
def test_chinese_plates_pass_the_default_format(plate: str) -> None:
    assert flags(weighing(plate=plate)) == []


@pytest.mark.parametrize(("plate", "expected"), [
    ("", ["empty_plate"]),
    ("ABC123", ["plate_format"]),
    ("辽B1234", ["plate_format"]),         # one character short
    ("辽BI2345", ["plate_format"]),        # no I or O on Chinese plates
    ("辽B12\x0045", ["plate_unsafe", "plate_format"]),
    ("辽B12345\r\n", ["plate_unsafe", "plate_format"]),
    ("辽B\u202e54321", ["plate_unsafe", "plate_format"]),  # right-to-left override
    ("辽B\u2066123\u2069", ["plate_unsafe", "plate_format"]),
    ("<img src=x onerror=alert(1)>", ["plate_unsafe", "plate_format"]),
    ("辽B1'&\"45", ["plate_unsafe", "plate_format"]),
])
def test_plates_no_vehicle_carries_are_flagged(plate: str, expected: list[str]) -> None:
    assert flags(weighing(plate=plate)) == expected


def test_an_unsafe_plate_is_described_by_code_points_never_echoed() -> None:
    why = weighing_flags(weighing(plate="<b>\u202e\x00"))["plate_unsafe"]
    assert why == "the plate holds U+0000, U+003C, U+003E, U+202E"
    assert "<" not in why and "\u202e" not in why


def test_the_plate_format_is_the_sites() -> None:
    eu = replace(SIM, plate_pattern="[A-Z]{1,3}-[A-Z]{1,2} [0-9]{1,4}")
    assert flags(weighing(plate="HH-AB 1234", limits=eu)) == []
    assert flags(weighing(plate="辽B12345", limits=eu)) == ["plate_format"]


def test_device_time_far_from_receipt_is_flagged_per_event() -> None:
    year_3000 = 32_503_680_000_000
    assert flags(weighing(ts=year_3000)) == ["device_time_ahead"]
    assert flags(weighing(ts=T0 + 299_000, received=T0)) == []          # within 5 min
    assert flags(weighing(ts=T0 + 301_000, received=T0)) == ["device_time_ahead"]
    # a backlog drained an hour late is not a clock fault; 1970 (an unset clock) is
    assert flags(weighing(ts=T0 - 3_600_000, received=T0)) == []
    assert flags(weighing(ts=0, received=T0)) == ["device_time_old"]
    # the device's last health said its clock is 3 h behind: its live events are suspect
    behind = replace(SIM, clock_offset_ms=-3 * 3_600_000)
    assert flags(weighing(ts=T0 - 3 * 3_600_000, received=T0, limits=behind)) == \
        ["device_clock_off"]
    alarm = Fact("wb-1", 2, 1, "alarm", year_3000, T0, {"alarm": "overload",
                                                       "state": "raised"}, SIM)
    assert list(event_time_flags(alarm)) == ["device_time_ahead"]


def test_flags_are_listed_in_one_order_with_every_code_documented() -> None:
    found = flags(weighing(-20, 40, 0, plate="", ts=T0 * 30))
    assert found == [code for code in FLAGS if code in found]
    assert {"negative_weight", "tare_above_gross", "net_mismatch", "empty_plate",
            "device_time_ahead"} <= set(found)
    assert all(FLAGS.values())


def _device(driver: dict[str, Any], **row: Any) -> dict[str, Any]:
    return {"device_id": "wb-1", "driver_json": json.dumps(driver), **row}


def test_limits_come_from_the_devices_register_map_and_driver() -> None:
    site = Settings(plate_pattern="[A-Z0-9]{5,8}", max_clock_skew_ms=60_000)
    sim = limits_for(_device({"type": "weighbridge", "map": "portwatch-sim"},
                             clock_offset_ms=-90_000), site)
    assert (sim.capacity_kg, sim.division_kg, sim.plate_pattern, sim.max_clock_skew_ms,
            sim.clock_offset_ms) == (80_000, 20, "[A-Z0-9]{5,8}", 60_000, -90_000)
    f32 = limits_for(_device({"type": "weighbridge", "map": "float32-le-sim"}), site)
    assert (f32.capacity_kg, f32.division_kg) == (100_000, 50)
    own = limits_for(_device({"type": "weighbridge", "map": "portwatch-sim",
                              "division_kg": 10}), site)
    assert own.division_kg == 10  # the driver's division overrides the map's, as on the agent
    for driver in ({}, {"type": "weighbridge", "map": "gone-since"}, {"map": 7}):
        none = limits_for(_device(driver), site)
        assert (none.capacity_kg, none.division_kg) == (DEFAULT_CAPACITY_KG, None)
    assert limits_for({"driver_json": "{not json"}, site).division_kg is None


def test_site_settings_from_the_environment_and_refused_when_unusable() -> None:
    s = Settings.from_env({"PORTWATCH_PLATE_PATTERN": "[A-Z]{2}[0-9]{4}",
                           "PORTWATCH_MAX_CLOCK_SKEW_S": "120",
                           "PORTWATCH_MAX_EVENT_DELAY_H": "48"})
    assert (s.plate_pattern, s.max_clock_skew_ms, s.max_delay_ms) == (
        "[A-Z]{2}[0-9]{4}", 120_000, 48 * 3_600_000)
    assert Settings.from_env({}) == Settings()
    for env, says in (({"PORTWATCH_PLATE_PATTERN": "[A-"}, "not a regular expression"),
                      ({"PORTWATCH_MAX_CLOCK_SKEW_S": "soon"}, "must be numbers"),
                      ({"PORTWATCH_MAX_CLOCK_SKEW_S": "nan"}, "positive numbers"),
                      ({"PORTWATCH_MAX_CLOCK_SKEW_S": "0.5"}, "at least 1 s")):
        with pytest.raises(ConfigError, match=says):
            Settings.from_env(env)
