"""How a device looks to an operator, from its registry row: pure, for the API and the CLI."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

STALE_AFTER_MS = 60_000    # an 'online' device silent this long is shown as stale
CLOCK_SUSPECT_MS = 60_000  # a device clock this far off is flagged


def status(row: Mapping[str, Any], now_ms: int) -> str:
    """online, offline, stale (online but silent), never, or decommissioned."""
    if row.get("decommissioned_ms") is not None:
        return "decommissioned"
    state = str(row["status"])
    last = row.get("last_seen_ms")
    if state == "online" and last and now_ms - last > STALE_AFTER_MS:
        return "stale"
    return state


def clock_suspect(row: Mapping[str, Any]) -> bool:
    """The device clock is more than a minute off the controller's."""
    return abs(int(row.get("clock_offset_ms") or 0)) > CLOCK_SUSPECT_MS


def summary(row: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The fields an operator sees of one device."""
    return {
        "device_id": row["device_id"], "site": row["site"], "kind": row["kind"],
        "description": row.get("description") or "", "status": status(row, now_ms),
        "last_seen_ms": row.get("last_seen_ms"), "fw_version": row.get("fw_version"),
        "boot": row["boot"], "committed_seq": row["committed_seq"],
        "health": json.loads(row["health_json"]) if row.get("health_json") else None,
        "health_ms": row.get("health_ms"), "clock_offset_ms": row.get("clock_offset_ms"),
        "clock_suspect": clock_suspect(row), "key_id": row["key_id"],
        "decommissioned_ms": row.get("decommissioned_ms"), "device_pub": row.get("device_pub"),
    }
