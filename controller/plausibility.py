"""Is a custody event physically possible? Pure checks against the device's registration.

A signed event is evidence and is always stored, but its signature proves only who sent
it, not that a scale could have shown it: a compromised device, a faulty indicator or a
wrong register map can sign a negative weight, a gross of 10^15 kg, a plate with a NUL
or a right-to-left override, or a time in the year 3000. These functions name what is
impossible or suspect as short flag codes. The weighing projection stores them on the
weighing (``weighings.flags``) and the supervision rules ``weighing_plausibility`` and
``device_time`` raise alerts from the same calls, so the checks live here only.

What a device is held to comes with each fact as ``Limits``: capacity and division from
its register map (or the ``division_kg`` of its driver settings), the site's plate format
and clock tolerances (``Settings``, from the controller's environment), and the clock
offset of its latest health sample, all as the controller knew them at receipt.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.errors import ConfigError
from protocols import registermap

if TYPE_CHECKING:
    from controller.facts import Fact

__all__ = ["CALIBRATION_FLAGS", "CLOCK_FLAGS", "DEFAULT_PLATE_PATTERN", "FIGURE_FLAGS",
           "FLAGS", "PLATE_FLAGS", "Limits", "Settings", "calibration_problems",
           "event_time_flags", "limits_for", "weighing_flags"]

# Chinese plates (GA 36-2018): a province character, the issuing office's letter, then
# five letters or digits (six on new-energy plates); letters never I or O; a trailer, a
# learner car, a police car or a Hong Kong / Macau cross-border plate ends in 挂 学 警 港 澳.
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
DEFAULT_PLATE_PATTERN = (f"[{PROVINCES}][A-HJ-NP-Z][A-HJ-NP-Z0-9]{{4,5}}"
                         "[A-HJ-NP-Z0-9挂学警港澳]")
DEFAULT_CAPACITY_KG = 150_000      # a 3-deck truck scale's usual Max, for a device without a map
DEFAULT_MAX_CLOCK_SKEW_MS = 300_000      # 5 min: transit and batching take well under a second
DEFAULT_MAX_DELAY_MS = 7 * 86_400_000    # a week in an outbox is an outage worth a look
ENV_PLATE = "PORTWATCH_PLATE_PATTERN"
ENV_SKEW = "PORTWATCH_MAX_CLOCK_SKEW_S"
ENV_DELAY = "PORTWATCH_MAX_EVENT_DELAY_H"

# code -> what it means, for the API's documentation and the operator
FIGURE_FLAGS = {
    "negative_weight": "gross or tare below zero",
    "tare_above_gross": "tare above gross",
    "net_mismatch": "net is not gross - tare",
    "net_not_positive": "net zero or below",
    "over_capacity": "gross above the deck's capacity (Max)",
    "off_division": "a weight that is not a whole number of divisions",
    "division_mismatch": "the division sent is not the registered one",
}
PLATE_FLAGS = {
    "empty_plate": "no plate",
    "plate_unsafe": "control characters (NUL, CR, LF, ...), bidi overrides or HTML "
                    "metacharacters in the plate",
    "plate_format": "the plate does not match the site's plate format",
}
CLOCK_FLAGS = {
    "device_time_ahead": "device time later than receipt: the device clock runs ahead",
    "device_time_old": "device time long before receipt: the clock is behind, or the "
                       "event waited that long in the outbox",
    "device_clock_off": "the device's latest health put its clock off the controller's",
}
CALIBRATION_FLAGS = {
    "out_of_calibration": "no calibration certificate of the instrument covers the reading's "
                          "device time (controller/calibration.py)",
}
FLAGS = {**FIGURE_FLAGS, **PLATE_FLAGS, **CLOCK_FLAGS, **CALIBRATION_FLAGS}

# C0 and C1 controls and DEL; bidi embeddings, overrides and isolates (Trojan Source);
# zero-width and BOM characters; and what HTML gives meaning to
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff"
                     "<>&\"'`]")


@dataclass(frozen=True, slots=True)
class Settings:
    """The site's rules for every device (``portwatch controller`` options)."""

    plate_pattern: str = DEFAULT_PLATE_PATTERN
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    default_capacity_kg: int = DEFAULT_CAPACITY_KG

    def __post_init__(self) -> None:
        try:
            re.compile(self.plate_pattern)
        except re.error as exc:
            raise ConfigError(f"{ENV_PLATE}={self.plate_pattern!r} is not a regular "
                              f"expression: {exc}") from exc
        if self.max_clock_skew_ms < 1000 or self.max_delay_ms < self.max_clock_skew_ms:
            raise ConfigError(f"{ENV_SKEW} must be at least 1 s and {ENV_DELAY} at least "
                              f"{ENV_SKEW}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The site's settings from ``PORTWATCH_PLATE_PATTERN``, ``PORTWATCH_MAX_CLOCK_SKEW_S``
        and ``PORTWATCH_MAX_EVENT_DELAY_H`` (defaults when unset); ConfigError when bad."""
        env = os.environ if env is None else env
        try:
            skew_s = float(env.get(ENV_SKEW) or DEFAULT_MAX_CLOCK_SKEW_MS / 1000)
            delay_h = float(env.get(ENV_DELAY) or DEFAULT_MAX_DELAY_MS / 3_600_000)
        except ValueError as exc:
            raise ConfigError(f"{ENV_SKEW} and {ENV_DELAY} must be numbers: {exc}") from exc
        if not (0 < skew_s < 1e9 and 0 < delay_h < 1e6):  # NaN fails both too
            raise ConfigError(f"{ENV_SKEW} and {ENV_DELAY} must be positive numbers")
        return cls(plate_pattern=env.get(ENV_PLATE) or DEFAULT_PLATE_PATTERN,
                   max_clock_skew_ms=int(skew_s * 1000), max_delay_ms=int(delay_h * 3_600_000))


@dataclass(frozen=True, slots=True)
class Limits:
    """What one device is held to, as known when its event was received."""

    capacity_kg: int = DEFAULT_CAPACITY_KG
    division_kg: int | None = None  # None: only the division the device sent is known
    plate_pattern: str = DEFAULT_PLATE_PATTERN
    max_clock_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    clock_offset_ms: int | None = None  # device minus controller clock at its last health
    # [issued, expires) of each calibration certificate on file; None: the device has none
    # and is not under calibration control (controller/calibration.py)
    calibration: tuple[tuple[int, int], ...] | None = None


@functools.lru_cache(maxsize=64)
def _map_limits(name: str) -> tuple[float | None, float | None]:
    try:
        m = registermap.load_named(name)
    except (OSError, ValueError):  # a map removed since the device was provisioned
        return None, None
    return m.get("capacity_kg"), m.get("division_kg")


def _whole(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 1 \
            or value != int(value):
        return None  # a fractional division (0.5 kg) cannot check integer kg figures
    return int(value)


@functools.lru_cache(maxsize=1024)
def _driver_limits(driver_json: str) -> tuple[int | None, int | None]:
    """(capacity, division) registered in a device's driver settings, parsed once per text."""
    try:
        driver = json.loads(driver_json)
    except ValueError:
        driver = {}
    capacity: float | None = None
    division: object = None
    if isinstance(driver, dict) and isinstance(driver.get("map"), str):
        capacity, division = _map_limits(driver["map"])
    if isinstance(driver, dict) and "division_kg" in driver:
        division = driver["division_kg"]  # the agent rounds to this one (edge/drivers)
    return _whole(capacity), _whole(division)


def limits_for(device: Mapping[str, Any], settings: Settings) -> Limits:
    """The limits of a device from its registry row (``driver_json``, ``clock_offset_ms``)."""
    capacity, division = _driver_limits(str(device.get("driver_json") or "{}"))
    offset = device.get("clock_offset_ms")
    return Limits(capacity_kg=capacity or settings.default_capacity_kg,
                  division_kg=division, plate_pattern=settings.plate_pattern,
                  max_clock_skew_ms=settings.max_clock_skew_ms,
                  max_delay_ms=settings.max_delay_ms,
                  clock_offset_ms=offset if isinstance(offset, int) else None)


@functools.lru_cache(maxsize=8)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def figure_problems(body: Mapping[str, Any], limits: Limits) -> dict[str, str]:
    """Flag code -> the failed check in words, for a weighing's figures."""
    gross, tare, net, sent_div = (int(body[k]) for k in ("gross_kg", "tare_kg", "net_kg",
                                                         "division_kg"))
    out: dict[str, str] = {}
    negative = [f"{n} {v} kg" for n, v in (("gross", gross), ("tare", tare)) if v < 0]
    if negative:
        out["negative_weight"] = " and ".join(negative) + " below zero"
    if tare > gross:
        out["tare_above_gross"] = f"tare {tare} kg is above gross {gross} kg"
    if gross - tare != net:
        out["net_mismatch"] = f"net {net} kg is not gross {gross} - tare {tare} kg"
    if net <= 0:
        out["net_not_positive"] = f"net {net} kg is not positive"
    if gross > limits.capacity_kg:
        out["over_capacity"] = f"gross {gross} kg is above the capacity of " \
                               f"{limits.capacity_kg} kg"
    div = limits.division_kg or sent_div
    if limits.division_kg is not None and sent_div != limits.division_kg:
        out["division_mismatch"] = f"division {sent_div} kg sent, {limits.division_kg} kg " \
                                   "registered"
    if div > 0:
        off = [f"{n} {v} kg" for n, v in (("gross", gross), ("tare", tare), ("net", net))
               if v % div]
        if off:
            verb = "is" if len(off) == 1 else "are"
            out["off_division"] = f"{', '.join(off)} {verb} not a multiple of the {div} kg " \
                                  "division"
    return out


def plate_problems(plate: str, limits: Limits) -> dict[str, str]:
    """Flag code -> what is wrong with a plate (its text is never echoed: it is untrusted)."""
    if not plate:
        return {"empty_plate": "the plate is empty"}
    out: dict[str, str] = {}
    bad = sorted({f"U+{ord(c):04X}" for c in _UNSAFE.findall(plate)})
    if bad:
        out["plate_unsafe"] = f"the plate holds {', '.join(bad)}"
    if not _pattern(limits.plate_pattern).fullmatch(plate):
        out["plate_format"] = f"the plate ({len(plate)} characters) does not match the " \
                              "site's plate format"
    return out


def time_problems(device_ts: int, received_ms: int, limits: Limits) -> dict[str, str]:
    """Flag code -> what is wrong with an event's device time, judged at its receipt."""
    out: dict[str, str] = {}
    lead = device_ts - received_ms
    if lead > limits.max_clock_skew_ms:
        out["device_time_ahead"] = f"device time {lead // 1000} s after receipt"
    if -lead > limits.max_delay_ms:
        out["device_time_old"] = f"device time {-lead // 1000} s before receipt"
    offset = limits.clock_offset_ms
    if offset is not None and abs(offset) > limits.max_clock_skew_ms:
        out["device_clock_off"] = f"the device's last health put its clock {offset // 1000} " \
                                  "s off"
    return out


def calibration_problems(device_ts: int, limits: Limits) -> dict[str, str]:
    """``out_of_calibration`` when the device has certificates and none covers ``device_ts``."""
    windows = limits.calibration
    if windows is None or any(start <= device_ts < end for start, end in windows):
        return {}
    return {"out_of_calibration": f"no certificate of the instrument covers device time "
                                  f"{device_ts} ms"}


def event_time_flags(fact: Fact) -> dict[str, str]:
    """The clock flags of any custody event."""
    return time_problems(fact.device_ts, fact.received_ms, fact.limits or Limits())


def weighing_flags(fact: Fact) -> dict[str, str]:
    """Every flag of a weighing (figures, plate, time), in ``FLAGS`` order, with its reason."""
    limits = fact.limits or Limits()
    found = {**figure_problems(fact.body, limits),
             **plate_problems(str(fact.body["plate"]), limits),
             **event_time_flags(fact),
             **calibration_problems(fact.device_ts, limits)}
    return {code: found[code] for code in FLAGS if code in found}
