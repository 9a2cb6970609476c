"""What a JT/T 808 terminal's reports become on the portwatch side: pure functions.

A terminal is the portwatch device ``jt-<phone>`` (kind ``gps``), ``<phone>`` its SIM number
without BCD's leading zeros (a 2013 header's BCD[6] and a 2019 header's BCD[10] name the
same device). Its reports become ``positions`` events (PROTOCOL.md, Bodies) and, when its
alarm bits change, ``alarm`` events: bit 8 (main power cut) ``ext_power_lost``, bit 28
(illegal displacement, which trackers also raise when their case is opened and moved)
``case_tamper``, each raised and cleared on change.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from protocols import bodies, jtt808

DEVICE_PREFIX = "jt-"
SRC = "jtt808"
EXTRA_SATELLITES = 0x31  # JT/T 808 additional item: GNSS satellites in view (BYTE)
ALARM_CODES = ((jtt808.ALARM_POWER_CUT, "ext_power_lost"),
               (jtt808.ALARM_ILLEGAL_DISPLACEMENT, "case_tamper"))


@dataclass(frozen=True, slots=True)
class Event:
    """One custody event to seal: ``kind``, ``body`` and device time ``ts_ms``."""

    kind: str
    body: dict[str, Any]
    ts_ms: int


def device_id(phone: str) -> str:
    """The portwatch device id of the terminal with this BCD phone number."""
    return DEVICE_PREFIX + jtt808.normal_phone(phone)


def auth_code(secret: bytes, device: str) -> bytes:
    """The authentication code the gateway hands a terminal at registration.

    Derived from the device's HMAC secret (16 hex digits), so every gateway process
    gives and accepts the same code without storing it, and a key rotation changes it
    (the terminal then registers again).
    """
    mac = hmac.new(secret, b"jtt808-auth\n" + device.encode(), hashlib.sha256).hexdigest()
    return mac[:16].encode()


def plate_text(raw: bytes) -> str:
    """A registration's plate (GBK on the wire) as text; undecodable bytes shown escaped."""
    return raw.decode("gbk", errors="backslashreplace")


def fix(loc: dict[str, Any]) -> list[int]:
    """One decoded 0x0200 body as the contract's fix ``[ts_ms, lat_e6, lon_e6,
    speed_dkmh, course_deg, sats, hdop_x10]``; JT/T 808 carries no HDOP (0), the
    satellites only as additional item 0x31 (else 0)."""
    sats = 0
    for item_id, value in loc["extras"]:
        if item_id == EXTRA_SATELLITES and len(value) == 1:
            sats = value[0]
    return [loc["ts_ms"], loc["lat_e6"], loc["lon_e6"], loc["speed_dkmh"],
            loc["course"] % 360, sats, 0]


def _batch_body(run: Sequence[dict[str, Any]]) -> dict[str, Any]:
    last = run[-1]
    return {"fixes": [fix(loc) for loc in run],
            "ign": bool(last["status"] & jtt808.STATUS_ACC),
            "ext_power": not last["alarm"] & jtt808.ALARM_POWER_CUT,
            "tamper": bool(last["alarm"] & jtt808.ALARM_ILLEGAL_DISPLACEMENT),
            "src": SRC,
            "alarm_bits": [loc["alarm"] for loc in run],
            "status_bits": [loc["status"] for loc in run]}


def positions_events(locations: Iterable[dict[str, Any]]) -> list[Event]:
    """``positions`` events for a report's fixes: sorted by time, cut where ignition
    changes (the body's ``ign`` holds for every fix of it) and every 64 fixes."""
    ordered = sorted(locations, key=lambda loc: loc["ts_ms"])
    events: list[Event] = []
    run: list[dict[str, Any]] = []
    for loc in ordered:
        if run and (len(run) == bodies.MAX_FIXES
                    or (loc["status"] ^ run[-1]["status"]) & jtt808.STATUS_ACC):
            events.append(Event("positions", _batch_body(run), run[-1]["ts_ms"]))
            run = []
        run.append(loc)
    if run:
        events.append(Event("positions", _batch_body(run), run[-1]["ts_ms"]))
    return events


def alarm_events(previous: int | None, locations: Iterable[dict[str, Any]]
                 ) -> tuple[list[Event], int | None]:
    """``alarm`` events for the alarm bits that changed, fix by fix in time order, and the
    bits to remember. ``previous`` None (a terminal never seen): a bit already set at the
    first fix is raised, a clear one says nothing."""
    events: list[Event] = []
    state = previous
    for loc in sorted(locations, key=lambda loc: loc["ts_ms"]):
        bits = loc["alarm"]
        for mask, code in ALARM_CODES:
            was = bool(state & mask) if state is not None else False
            now = bool(bits & mask)
            if now != was:
                events.append(Event("alarm", {
                    "alarm": code, "state": "raised" if now else "cleared",
                    "detail": {"alarm_bits": bits, "lat_e6": loc["lat_e6"],
                               "lon_e6": loc["lon_e6"]}}, loc["ts_ms"]))
        state = bits
    return events, state


def report_digest(msg_id: int, body: bytes) -> str:
    """What identifies one report when a terminal resends it under a new serial."""
    return hashlib.sha256(msg_id.to_bytes(2, "big") + body).hexdigest()
