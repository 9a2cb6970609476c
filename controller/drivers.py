"""Check a device's driver settings before they are provisioned into its config.

The firmware reads its driver settings only at boot, on the device, where a wrong one
is a crash (an unknown register map is an ENOENT when the map file is opened) or a
silently useless agent (a poll period longer than the stability window never weighs
anything). ``validate_driver`` refuses such settings when the device is provisioned,
with a message naming the setting and what it may be. It is pure: no store, no network.
"""

from __future__ import annotations

import ipaddress
import math
import re
from pathlib import Path
from typing import Any

import protocols
from protocols.bodies import MAX_FIXES  # the most fixes one positions event carries

__all__ = ["DEVICE_KINDS", "MAPS_DIR", "TRACKER_KEYS", "WEIGHBRIDGE_KEYS", "known_maps",
           "validate_driver"]

DEVICE_KINDS = ("weighbridge", "gps", "rail_reader", "lab")
# The firmware image carries exactly the maps in this folder (tools/firmware.py), and the
# weighbridge driver opens "registermaps/<map>.json" next to protocols/regdecode.py.
MAPS_DIR = Path(protocols.__file__).resolve().parent / "registermaps"
# kind -> the driver types the firmware has for it (edge/agent.py _make_driver)
DRIVER_TYPES: dict[str, tuple[str, ...]] = {"weighbridge": ("weighbridge",), "gps": ("tracker",)}
DRIVER_TYPES["rail_reader"] = ("rail",)  # edge/drivers/rail.py
DRIVER_TYPES["lab"] = ("lab",)  # edge/drivers/lab.py
LAB_KEYS = ("type", "source")  # every key the firmware's lab driver reads
RAIL_KEYS = ("type", "source")
NO_DRIVER = ("", "none")  # the agent then runs without a driver: health and commands only

# Every key the firmware's weighbridge driver reads (edge/drivers/weighbridge.py): any
# other key is a typo the device would ignore, so it is refused here.
WEIGHBRIDGE_KEYS = ("type", "map", "host", "port", "unit", "poll_ms", "timeout_ms", "stable_s",
                    "min_weight_kg", "motion_alarm_s", "unreachable_after", "frozen_after_ms",
                    "division_kg", "barrier")
# "local": the barrier opens once the weighing is stored (an in-gate); "controller": only on
# the controller's open command for that weighing (an out-gate; PROTOCOL.md, Commands)
BARRIER_MODES = ("local", "controller")
STABLE_S = (0.1, 60.0)  # OIML R 76 indicators settle in seconds; a minute is a stuck deck
POLL_MS = (20, 10_000)  # below 20 ms a TCP indicator only queues requests
TIMEOUT_MS = (50, 30_000)
MIN_POLLS_PER_STABLE = 2  # stability is judged over successive readings: at least two
# Every key the firmware's tracker driver reads (edge/drivers/tracker.py).
TRACKER_KEYS = ("type", "source", "moving_s", "parked_s", "batch_fixes", "batch_max_s",
                "moving_kmh", "pins")
UART_BAUDS = (4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800)  # GNSS receivers' rates
TRACKER_PINS = ("ign", "ext_power", "tamper")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def known_maps() -> list[str]:
    """Names of the register maps the firmware image carries, sorted."""
    return sorted(p.stem for p in MAPS_DIR.glob("*.json"))


def validate_driver(kind: str, driver: dict[str, Any]) -> dict[str, Any]:
    """Return a checked copy of ``driver`` for a device of ``kind``; raise ValueError if unusable.

    An empty driver (or type ``none``) is valid for every kind: the agent then reports
    health but polls nothing. A weighbridge driver needs a bundled register ``map``,
    an indicator ``host`` and ``port``, and sensible ``stable_s`` and ``poll_ms``; a gps
    device's tracker driver a ``source`` the firmware can open (``check_tracker``).
    """
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device kind {kind!r}: use one of {', '.join(DEVICE_KINDS)}")
    if not isinstance(driver, dict):
        raise ValueError(f"driver settings must be an object, got {type(driver).__name__}")
    checked = dict(driver)
    dtype = checked.get("type", "")
    if dtype in NO_DRIVER and set(checked) <= {"type"}:
        return checked
    allowed = DRIVER_TYPES.get(kind, ())
    if dtype not in allowed:
        have = f"driver types: {', '.join(allowed)}" if allowed else "no driver yet"
        raise ValueError(f"driver type {dtype!r} is not one a {kind} device can run "
                         f"(the firmware has {have}; leave the driver empty for none)")
    if dtype == "tracker":
        check_tracker(checked)
    elif dtype == "rail":
        check_rail(checked)
    elif dtype == "lab":
        check_lab(checked)
    else:
        _check_weighbridge(checked)
    return checked


def _check_weighbridge(d: dict[str, Any]) -> None:
    unknown = sorted(set(d) - set(WEIGHBRIDGE_KEYS))
    if unknown:
        raise ValueError(f"unknown weighbridge driver setting(s) {', '.join(unknown)}: "
                         f"known are {', '.join(WEIGHBRIDGE_KEYS)}")
    for key in ("map", "host", "port"):
        if key not in d:
            raise ValueError(f"weighbridge driver needs {key!r}")
    _check_map(d["map"])
    _check_host(d["host"])
    _int_in(d, "port", 1, 65_535)
    if "unit" in d:
        _int_in(d, "unit", 0, 247)  # Modbus unit ids; 0 is "any" on a TCP gateway
    poll_ms = _int_in(d, "poll_ms", *POLL_MS) if "poll_ms" in d else 200
    stable_s = _number_in(d, "stable_s", *STABLE_S) if "stable_s" in d else 3.0
    if "timeout_ms" in d:
        _int_in(d, "timeout_ms", *TIMEOUT_MS)
    if stable_s * 1000 < MIN_POLLS_PER_STABLE * poll_ms:
        raise ValueError(f"stable_s {stable_s:g} s is shorter than {MIN_POLLS_PER_STABLE} polls "
                         f"of poll_ms {poll_ms} ms: the agent could never see the weight "
                         "stable; poll faster or wait longer")
    for key in ("min_weight_kg", "motion_alarm_s", "division_kg"):
        if key in d:
            _number_in(d, key, 0.0, 1e6)
    for key in ("unreachable_after", "frozen_after_ms"):
        if key in d:
            _int_in(d, key, 1, 10_000_000)
    if "barrier" in d and d["barrier"] not in BARRIER_MODES:
        raise ValueError(f"barrier must be one of {', '.join(map(repr, BARRIER_MODES))} "
                         "(local: opens once the weighing is stored; controller: only on "
                         f"the controller's open command), got {d['barrier']!r}")


def _check_map(name: object) -> None:
    maps = known_maps()
    # A name, never a path: the firmware joins it into a path on the device's flash.
    if not isinstance(name, str) or name not in maps:
        raise ValueError(f"unknown register map {name!r}: known maps are {', '.join(maps)} "
                         f"(files in {MAPS_DIR.relative_to(MAPS_DIR.parents[1])}/; a new "
                         "indicator model is a new map file there)")


def _check_host(host: object) -> None:
    if not isinstance(host, str) or not host:
        raise ValueError(f"indicator host must be a hostname or IP address, got {host!r}")
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():  # 10.0.0.300 is a bad address, not a hostname
        raise ValueError(f"indicator host {host!r} is neither an IP address nor a hostname")


def _int_in(d: dict[str, Any], key: str, low: int, high: int) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{key} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _number_in(d: dict[str, Any], key: str, low: float, high: float) -> float:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{key} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


def check_tracker(d: dict[str, Any]) -> None:
    """Refuse tracker settings the firmware would not run, or run uselessly: an unknown key,
    a source it cannot open, intervals that make no batch or more fixes than an event holds."""
    unknown = sorted(set(d) - set(TRACKER_KEYS))
    if unknown:
        raise ValueError(f"unknown tracker driver setting(s) {', '.join(unknown)}: "
                         f"known are {', '.join(TRACKER_KEYS)}")
    if "source" not in d:
        raise ValueError("tracker driver needs 'source': tcp:<host>:<port> (an NMEA stream, "
                         "e.g. an emulator's) or uart:<id>:<baud>:<tx pin>:<rx pin> (a board's "
                         "GNSS receiver)")
    _check_source(d["source"])
    moving_s = _number_in(d, "moving_s", 1.0, 3600.0) if "moving_s" in d else 5.0
    parked_s = _number_in(d, "parked_s", 1.0, 86_400.0) if "parked_s" in d else 60.0
    if parked_s < moving_s:
        raise ValueError(f"parked_s {parked_s:g} s is shorter than moving_s {moving_s:g} s: a "
                         "parked truck would be reported more often than a moving one")
    if "batch_fixes" in d:
        _int_in(d, "batch_fixes", 1, MAX_FIXES)
    if "batch_max_s" in d:
        batch_max_s = _number_in(d, "batch_max_s", 1.0, 86_400.0)
        if batch_max_s < moving_s:
            raise ValueError(f"batch_max_s {batch_max_s:g} s is shorter than moving_s "
                             f"{moving_s:g} s: every event would carry one fix; make it at "
                             "least batch_fixes x moving_s")
    if "moving_kmh" in d:
        _number_in(d, "moving_kmh", 0.0, 200.0)
    if "pins" in d:
        _check_pins(d["pins"], d["source"])


def check_rail(d: dict[str, Any]) -> None:
    """Refuse rail reader settings the firmware would not run: an unknown key, or a
    ``source`` that is not the reader's TCP port (tcp:<host>:<port>)."""
    unknown = sorted(set(d) - set(RAIL_KEYS))
    if unknown:
        raise ValueError(f"unknown rail driver setting(s) {', '.join(unknown)}: "
                         f"known are {', '.join(RAIL_KEYS)}")
    source = d.get("source")
    if not isinstance(source, str) or not source.startswith("tcp:"):
        raise ValueError("rail driver needs 'source': tcp:<host>:<port>, the AEI reader's "
                         "text port (e.g. portwatch emulate rail's)")
    _check_source(source)


def check_lab(d: dict[str, Any]) -> None:
    """Refuse lab analyzer settings the firmware would not run: an unknown key, or a
    ``source`` that is not the analyzer's TCP port (tcp:<host>:<port>)."""
    unknown = sorted(set(d) - set(LAB_KEYS))
    if unknown:
        raise ValueError(f"unknown lab driver setting(s) {', '.join(unknown)}: "
                         f"known are {', '.join(LAB_KEYS)}")
    source = d.get("source")
    if not isinstance(source, str) or not source.startswith("tcp:"):
        raise ValueError("lab driver needs 'source': tcp:<host>:<port>, the analyzer's "
                         "text port (e.g. portwatch emulate lab's)")
    _check_source(source)


def _check_source(source: object) -> None:
    if not isinstance(source, str):
        raise ValueError(f"tracker source must be a string, got {source!r}")
    scheme, _, rest = source.partition(":")
    if scheme == "tcp":
        host, _, port = rest.rpartition(":")
        try:
            _check_host(host)
        except ValueError:
            raise ValueError(f"tracker source {source!r}: the host before the port is neither "
                             "an IP address nor a hostname (tcp:<host>:<port>)") from None
        if not port.isdigit() or not 1 <= int(port) <= 65_535:
            raise ValueError(f"tracker source {source!r}: the port must be 1-65535")
        return
    if scheme == "uart":
        parts = rest.split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise ValueError(f"tracker source {source!r} is not uart:<id>:<baud>:<tx>:<rx> "
                             "(four whole numbers, e.g. uart:2:9600:17:16)")
        uart, baud, tx, rx = (int(p) for p in parts)
        if uart > 2 or baud not in UART_BAUDS or max(tx, rx) > 48 or tx == rx:
            raise ValueError(f"tracker source {source!r}: UART id 0-2, baud one of "
                             f"{', '.join(map(str, UART_BAUDS))}, tx and rx two GPIOs 0-48")
        return
    raise ValueError(f"tracker source {source!r} is neither tcp:<host>:<port> nor "
                     "uart:<id>:<baud>:<tx>:<rx> (the unix firmware reads tcp only)")


def _check_pins(pins: object, source: str) -> None:
    if not source.startswith("uart:"):
        raise ValueError("tracker 'pins' are a board's GPIO inputs, for a uart: source; on a "
                         "tcp: source the stream's $PPWIO sentences carry them")
    if not isinstance(pins, dict) or set(pins) != set(TRACKER_PINS):
        raise ValueError(f"tracker 'pins' must map each of {', '.join(TRACKER_PINS)} to a GPIO")
    for name in TRACKER_PINS:
        _int_in(pins, name, 0, 48)
    if len(set(pins.values())) != len(TRACKER_PINS):
        raise ValueError("tracker 'pins' must be three different GPIOs")
