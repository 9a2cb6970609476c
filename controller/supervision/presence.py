"""Was the truck's tracker at the weighbridge when the weighing was made? Pure, no I/O.

The cross-sensor check (controller/cross_sensor.py) asks it for every weighing at a
weighbridge of the site description whose plate has a transfer order with a tracker:
the fixes of that tracker around the weighing's time, against the weighbridge's zone.

- ``present``: a fix within ``window_ms`` of the weighing lies in the zone or within
  ``near_m`` of its edge (GPS error: a few metres in the open, ~15 m near silos and
  gantries).
- ``absent``: fixes on both sides of the weighing within the window, none near, and too
  far from the zone for the truck to have driven there and back between them at
  ``max_speed_mps``: the truck with that tracker was elsewhere, the plate on the deck is
  not its plate (a swapped plate).
- ``unknown``: no fix within the window on one side or both, or fixes so sparse that
  the truck could have been there between them: nothing can be said.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.site import geometry
from controller.site.model import Zone

PRESENT, ABSENT, UNKNOWN = "present", "absent", "unknown"
NEAR_M = 30.0
MAX_SPEED_MPS = 30 / 3.6  # a loaded truck on port roads
Fix = tuple[int, int, int]  # (ts_ms, lat_e6, lon_e6)


def distance_to_zone_m(zone: Zone, lat_e6: int, lon_e6: int) -> float:
    """0 inside the zone, else metres to its nearest edge."""
    if geometry.contains(zone, lat_e6, lon_e6):
        return 0.0
    p, pts = (lat_e6, lon_e6), zone.polygon
    return min(geometry.segment_distance_m(p, pts[i], pts[(i + 1) % len(pts)])
               for i in range(len(pts)))


def presence(fixes: Sequence[Fix], zone: Zone, t: int, window_ms: int, *,
             near_m: float = NEAR_M, max_speed_mps: float = MAX_SPEED_MPS) -> str:
    """``present``, ``absent`` or ``unknown`` (module docstring) for a weighing at device
    time ``t`` (ms, on the tracker's time base)."""
    within = sorted(f for f in fixes if abs(f[0] - t) <= window_ms)
    dist = {f: distance_to_zone_m(zone, f[1], f[2]) for f in within}
    if any(d <= near_m for d in dist.values()):
        return PRESENT
    before = [f for f in within if f[0] <= t]
    after = [f for f in within if f[0] >= t]
    if not before or not after:
        return UNKNOWN
    b, a = before[-1], after[0]
    reach_m = max_speed_mps * (a[0] - b[0]) / 1000
    if dist[b] - near_m + dist[a] - near_m <= reach_m:
        return UNKNOWN  # it could have been there between the two fixes
    return ABSENT


def nearest(fixes: Sequence[Fix], zone: Zone, t: int, window_ms: int) -> dict[str, object]:
    """What the alert shows: fixes in the window, and the one nearest the zone."""
    within = [f for f in fixes if abs(f[0] - t) <= window_ms]
    if not within:
        return {"fixes_in_window": 0}
    best = min(within, key=lambda f: distance_to_zone_m(zone, f[1], f[2]))
    return {"fixes_in_window": len(within),
            "nearest_m": round(distance_to_zone_m(zone, best[1], best[2]), 1),
            "nearest_fix": list(best)}
