"""validate_driver: the settings a device would crash on (or never weigh with) are refused."""

from __future__ import annotations

from typing import Any

import pytest

from controller.drivers import MAPS_DIR, known_maps, validate_driver

GOOD: dict[str, Any] = {"type": "weighbridge", "map": "portwatch-sim", "host": "10.20.0.7",
                        "port": 502, "stable_s": 3.0, "poll_ms": 200}


def bad(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def test_known_maps_are_the_bundled_map_files() -> None:
    assert known_maps() == sorted(p.stem for p in MAPS_DIR.glob("*.json"))
    assert {"portwatch-sim", "float32-le-sim"} <= set(known_maps())


def test_a_good_weighbridge_driver_comes_back_as_a_copy() -> None:
    checked = validate_driver("weighbridge", GOOD)
    assert checked == GOOD and checked is not GOOD


@pytest.mark.parametrize("driver", [
    GOOD,
    bad(host="indicator-7.gate1.port.example"),
    bad(host="::1"),
    bad(map="float32-le-sim", stable_s=0.4, poll_ms=50, timeout_ms=500),  # the HIL tests' own
    {"type": "weighbridge", "map": "portwatch-sim", "host": "localhost", "port": 5020},
])
def test_drivers_the_firmware_runs_are_accepted(driver: dict[str, Any]) -> None:
    assert validate_driver("weighbridge", driver) == driver


def test_an_unknown_map_is_refused_naming_every_known_map() -> None:
    with pytest.raises(ValueError, match="unknown register map 'no-such-map'") as info:
        validate_driver("weighbridge", bad(map="no-such-map"))
    for name in known_maps():
        assert name in str(info.value)
    assert "protocols/registermaps" in str(info.value)


@pytest.mark.parametrize("name", ["../registermaps/portwatch-sim", "portwatch-sim.json",
                                  "/etc/passwd", "", None, 3])
def test_a_map_must_be_a_bundled_name_not_a_path(name: object) -> None:
    with pytest.raises(ValueError, match="unknown register map"):
        validate_driver("weighbridge", bad(map=name))


@pytest.mark.parametrize(("changes", "message"), [
    ({"host": ""}, "indicator host"),
    ({"host": "bad host"}, "neither an IP address nor a hostname"),
    ({"host": "10.0.0.300"}, "neither an IP address nor a hostname"),
    ({"host": "-lead.example"}, "neither"),
    ({"host": 10}, "indicator host"),
    ({"port": 0}, "port must be a whole number from 1 to 65535"),
    ({"port": 65_536}, "port must be"),
    ({"port": "502"}, "port must be"),
    ({"port": True}, "port must be"),
    ({"stable_s": 0}, "stable_s must be a number from 0.1 to 60"),
    ({"stable_s": 600}, "stable_s must be"),
    ({"stable_s": float("nan")}, "stable_s must be"),
    ({"poll_ms": 5}, "poll_ms must be a whole number from 20 to 10000"),
    ({"poll_ms": 60_000}, "poll_ms must be"),
    ({"poll_ms": 200.5}, "poll_ms must be"),
    ({"stable_s": 0.3, "poll_ms": 200}, "shorter than 2 polls"),
    ({"unit": 300}, "unit must be"),
    ({"timeout_ms": 0}, "timeout_ms must be"),
    ({"stable": 3}, "unknown weighbridge driver setting"),
    ({"type": "scale"}, "driver type 'scale'"),
])
def test_bad_settings_are_refused_with_a_message_naming_them(changes: dict[str, Any],
                                                             message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_driver("weighbridge", bad(**changes))


@pytest.mark.parametrize("key", ["map", "host", "port"])
def test_a_weighbridge_driver_needs_map_host_and_port(key: str) -> None:
    driver = dict(GOOD)
    del driver[key]
    with pytest.raises(ValueError, match=f"needs '{key}'"):
        validate_driver("weighbridge", driver)


def test_no_driver_is_valid_for_every_kind_but_a_weighbridge_driver_only_on_a_weighbridge(
) -> None:
    for kind in ("weighbridge", "gps", "rail_reader", "lab"):
        assert validate_driver(kind, {}) == {}
        assert validate_driver(kind, {"type": "none"}) == {"type": "none"}
    with pytest.raises(ValueError, match=r"a gps device can run .*driver types: tracker"):
        validate_driver("gps", GOOD)
    with pytest.raises(ValueError, match=r"a lab device can run .*driver types: lab"):
        validate_driver("lab", GOOD)
    with pytest.raises(ValueError, match="a weighbridge device can run"):
        validate_driver("weighbridge", TRACKER)
    with pytest.raises(ValueError, match="unknown device kind 'crane'"):
        validate_driver("crane", {})
    with pytest.raises(ValueError, match="must be an object"):
        validate_driver("weighbridge", ["map"])  # type: ignore[arg-type]


TRACKER: dict[str, Any] = {"type": "tracker", "source": "tcp:127.0.0.1:10110"}


@pytest.mark.parametrize("driver", [
    TRACKER,
    {"type": "tracker", "source": "tcp:gps-emulator.site.example:2947", "moving_s": 5,
     "parked_s": 60, "batch_fixes": 10, "batch_max_s": 60, "moving_kmh": 5},
    {"type": "tracker", "source": "uart:2:9600:17:16", "batch_fixes": 64, "moving_s": 1.5,
     "pins": {"ign": 25, "ext_power": 26, "tamper": 27}},
    {"type": "tracker", "source": "tcp:::1:10110"},
])
def test_tracker_settings_the_firmware_runs_are_accepted(driver: dict[str, Any]) -> None:
    assert validate_driver("gps", driver) == driver


@pytest.mark.parametrize(("changes", "message"), [
    ({"source": None}, "must be a string"),
    ({"source": "pty:/dev/pts/3"}, "neither tcp:<host>:<port> nor uart"),
    ({"source": "/dev/ttyUSB0"}, "neither tcp:<host>:<port> nor uart"),
    ({"source": "tcp:127.0.0.1"}, "neither an IP address nor a hostname"),
    ({"source": "tcp:127.0.0.1:0"}, "port must be 1-65535"),
    ({"source": "tcp:127.0.0.1:http"}, "port must be 1-65535"),
    ({"source": "uart:2:9600:17"}, r"uart:<id>:<baud>:<tx>:<rx>"),
    ({"source": "uart:2:9601:17:16"}, "baud one of"),
    ({"source": "uart:2:9600:17:17"}, "two GPIOs"),
    ({"moving_s": 0}, "moving_s must be a number from 1 to 3600"),
    ({"parked_s": True}, "parked_s must be a number"),
    ({"moving_s": 30, "parked_s": 10}, "parked_s 10 s is shorter than moving_s 30 s"),
    ({"batch_fixes": 65}, "batch_fixes must be a whole number from 1 to 64"),
    ({"batch_fixes": 2.5}, "batch_fixes must be a whole number"),
    ({"batch_max_s": 2}, "batch_max_s 2 s is shorter than moving_s 5 s"),
    ({"moving_kmh": -1}, "moving_kmh must be a number from 0 to 200"),
    ({"intervall_s": 5}, "unknown tracker driver setting.*intervall_s"),
    ({"pins": {"ign": 1, "ext_power": 2, "tamper": 3}}, "for a uart: source"),
])
def test_tracker_settings_it_would_not_run_are_refused_with_the_reason(
        changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_driver("gps", {**TRACKER, **changes})


@pytest.mark.parametrize(("pins", "message"), [
    ({"ign": 25, "ext_power": 26}, "must map each of ign, ext_power, tamper"),
    ({"ign": 25, "ext_power": 26, "tamper": 99}, "tamper must be a whole number from 0 to 48"),
    ({"ign": 25, "ext_power": 25, "tamper": 27}, "three different GPIOs"),
    ([25, 26, 27], "must map each of"),
])
def test_tracker_pins_must_name_three_gpios(pins: object, message: str) -> None:
    driver = {"type": "tracker", "source": "uart:2:9600:17:16", "pins": pins}
    with pytest.raises(ValueError, match=message):
        validate_driver("gps", driver)


def test_tracker_without_a_source_is_refused_naming_both_forms() -> None:
    with pytest.raises(ValueError, match=r"needs 'source': tcp:.*uart:"):
        validate_driver("gps", {"type": "tracker", "moving_s": 5})
