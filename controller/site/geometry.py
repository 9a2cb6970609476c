"""Plane geometry on a site, in metres, from integer micro-degree coordinates.

Distances between two points use the haversine formula on a sphere of the mean Earth radius
(error under 0.5 % against the ellipsoid, far below GPS noise at the sizes that matter here).
Everything else (segment distances) projects the few points involved onto a local
equirectangular plane centred on the query point: over a segment of a few kilometres the
projection's error is centimetres, and a point near a segment is what we measure. Polygon
membership is exact: ray casting in integer micro-degrees (an equirectangular projection is
affine, so inside/outside does not depend on it), with points on an edge counted inside.
"""

from __future__ import annotations

import math

from controller.site.model import Corridor, Point, Site, Zone

EARTH_RADIUS_M = 6_371_008.8
_M_PER_E6_LAT = EARTH_RADIUS_M * math.pi / 180 / 1_000_000  # metres per micro-degree of latitude


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance in metres between two ``(lat_e6, lon_e6)`` points."""
    lat1, lon1 = math.radians(a[0] / 1e6), math.radians(a[1] / 1e6)
    lat2, lon2 = math.radians(b[0] / 1e6), math.radians(b[1] / 1e6)
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def to_local(origin: Point, p: Point) -> tuple[float, float]:
    """``p`` as (east, north) metres from ``origin`` on the local equirectangular plane."""
    k_lon = _M_PER_E6_LAT * math.cos(math.radians(origin[0] / 1e6))
    return (p[1] - origin[1]) * k_lon, (p[0] - origin[0]) * _M_PER_E6_LAT


def from_local(origin: Point, east_m: float, north_m: float) -> Point:
    """The point ``east_m``/``north_m`` metres from ``origin`` (inverse of ``to_local``)."""
    k_lon = _M_PER_E6_LAT * math.cos(math.radians(origin[0] / 1e6))
    return (origin[0] + round(north_m / _M_PER_E6_LAT), origin[1] + round(east_m / k_lon))


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    return (cross == 0 and min(a[0], b[0]) <= p[0] <= max(a[0], b[0])
            and min(a[1], b[1]) <= p[1] <= max(a[1], b[1]))


def contains_point(polygon: tuple[Point, ...], lat_e6: int, lon_e6: int) -> bool:
    """Whether a polygon (implicitly closed) holds the point; its edges count as inside."""
    p = (lat_e6, lon_e6)
    inside = False
    n = len(polygon)
    for i in range(n):
        a, b = polygon[i], polygon[(i + 1) % n]
        if _on_segment(p, a, b):
            return True
        # the edge crosses the horizontal (constant-latitude) ray going east from p
        if (a[0] > lat_e6) != (b[0] > lat_e6):
            # lon of the crossing > lon_e6, compared without division (exact in integers)
            num = (b[1] - a[1]) * (lat_e6 - a[0])
            den = b[0] - a[0]
            if (num > (lon_e6 - a[1]) * den) if den > 0 else (num < (lon_e6 - a[1]) * den):
                inside = not inside
    return inside


def contains(zone: Zone, lat_e6: int, lon_e6: int) -> bool:
    """Whether ``zone`` holds the point (its boundary included)."""
    return contains_point(zone.polygon, lat_e6, lon_e6)


def zones_at(site: Site, lat_e6: int, lon_e6: int) -> list[Zone]:
    """Every zone of ``site`` holding the point, in file order (zones may nest)."""
    return [z for z in site.zones.values() if contains(z, lat_e6, lon_e6)]


def segment_distance_m(p: Point, a: Point, b: Point) -> float:
    """Distance in metres from ``p`` to the segment ``a``-``b``."""
    ax, ay = to_local(p, a)
    bx, by = to_local(p, b)
    dx, dy = bx - ax, by - ay
    seg2 = dx * dx + dy * dy
    t = 0.0 if seg2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / seg2))
    return math.hypot(ax + t * dx, ay + t * dy)


def segment_distances_m(corridor: Corridor, lat_e6: int, lon_e6: int) -> list[float]:
    """Distance from the point to each segment of the corridor, in segment order."""
    p = (lat_e6, lon_e6)
    pts = corridor.points
    return [segment_distance_m(p, pts[i], pts[i + 1]) for i in range(len(pts) - 1)]


def corridor_distance_m(corridor: Corridor, lat_e6: int, lon_e6: int) -> tuple[float, int]:
    """(metres to the nearest segment, that segment's index); the first one on a tie."""
    dists = segment_distances_m(corridor, lat_e6, lon_e6)
    best = min(range(len(dists)), key=dists.__getitem__)
    return dists[best], best


def in_corridor(corridor: Corridor, lat_e6: int, lon_e6: int, margin_m: float = 0.0) -> bool:
    """Whether the point lies within half a segment's width (plus ``margin_m``) of any segment.

    Checking every segment, not only the nearest, matters at a vertex where a narrow segment
    meets a wide one: a point inside the wide one's band may be nearer the narrow one.
    """
    dists = segment_distances_m(corridor, lat_e6, lon_e6)
    return any(d <= w / 2 + margin_m for d, w in zip(dists, corridor.widths_m, strict=True))


def polyline_length_m(points: tuple[Point, ...]) -> float:
    """Length in metres of a polyline."""
    return sum(distance_m(points[i], points[i + 1]) for i in range(len(points) - 1))


def centroid(zone: Zone) -> Point:
    """The mean of a zone's vertices (enough for a small convex zone's middle)."""
    n = len(zone.polygon)
    return (round(sum(p[0] for p in zone.polygon) / n), round(sum(p[1] for p in zone.polygon) / n))


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether closed segments a-b and c-d share a point (exact integer orientation test)."""
    def orient(p: Point, q: Point, r: Point) -> int:
        v = (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])
        return (v > 0) - (v < 0)

    o1, o2, o3, o4 = orient(a, b, c), orient(a, b, d), orient(c, d, a), orient(c, d, b)
    if o1 != o2 and o3 != o4:
        return True
    return ((o1 == 0 and _on_segment(c, a, b)) or (o2 == 0 and _on_segment(d, a, b))
            or (o3 == 0 and _on_segment(a, c, d)) or (o4 == 0 and _on_segment(b, c, d)))


def self_intersection(polygon: tuple[Point, ...]) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (by index) that touch or cross, or None.

    Edge i joins point i to point i+1 (the last edge closes the ring). O(n^2): site polygons
    have tens of points.
    """
    n = len(polygon)
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # adjacent edges share a vertex by construction
            if _segments_cross(polygon[i], polygon[(i + 1) % n],
                               polygon[j], polygon[(j + 1) % n]):
                return i, j
    return None
