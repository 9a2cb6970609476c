"""Pure arithmetic behind the scrape-time gauges: rows and clocks in, numbers out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from controller import device_status

# every state device_status.status gives, always exported (a zero is a value too: a
# dashboard showing "offline 0" differs from one that lost the series)
DEVICE_STATES = ("online", "offline", "stale", "never", "decommissioned")


def devices_by_state(rows: Iterable[Mapping[str, Any]], now_ms: int) -> dict[str, int]:
    """How many devices are in each state, by the rule the API shows them with."""
    counts = dict.fromkeys(DEVICE_STATES, 0)
    for row in rows:
        state = device_status.status(row, now_ms)
        counts[state] = counts.get(state, 0) + 1
    return counts


def age_s(then_ms: int | None, now_ms: int) -> float | None:
    """Seconds from ``then_ms`` to ``now_ms`` (never negative), or None without a time."""
    if then_ms is None:
        return None
    return max(0.0, (now_ms - then_ms) / 1000)
