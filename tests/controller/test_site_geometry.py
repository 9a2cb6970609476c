"""Site geometry: distances against known values, polygons (convex, concave, edges,
vertices), corridors with a width per segment, checked near their vertices."""

from __future__ import annotations

import math

import pytest

from controller.site import Corridor, Site, Zone
from controller.site.geometry import (
    contains,
    corridor_distance_m,
    distance_m,
    from_local,
    in_corridor,
    self_intersection,
    to_local,
    zones_at,
)

ORIGIN = (38_933_000, 121_647_000)


def _at(east_m: float, north_m: float) -> tuple[int, int]:
    return from_local(ORIGIN, east_m, north_m)


def _zone(zid: str, *pts_m: tuple[float, float], kind: str = "gate") -> Zone:
    return Zone(zid, kind, zid, tuple(_at(e, n) for e, n in pts_m))


def test_distance_m_known_values() -> None:
    # one degree of latitude and of longitude on the equator: R * pi / 180
    one_degree = 6_371_008.8 * math.pi / 180
    assert distance_m((0, 0), (1_000_000, 0)) == pytest.approx(one_degree, abs=0.01)
    assert distance_m((0, 0), (0, 1_000_000)) == pytest.approx(one_degree, abs=0.01)
    # along a parallel at 60 degrees a degree of longitude is about half as long
    assert distance_m((60_000_000, 0), (60_000_000, 1_000_000)) == pytest.approx(
        one_degree / 2, rel=1e-4)
    # a micro-degree of latitude is 11 cm; symmetric; zero to itself
    assert distance_m(ORIGIN, (ORIGIN[0] + 1, ORIGIN[1])) == pytest.approx(0.1112, abs=1e-4)
    a, b = (38_933_725, 121_647_515), (39_328_500, 121_898_500)
    assert distance_m(a, b) == pytest.approx(distance_m(b, a))
    assert distance_m(a, a) == 0.0
    # Dalian to Beijing (Tiananmen), about 462 km on the sphere
    assert distance_m((38_914_000, 121_614_700), (39_907_500, 116_391_200)) == pytest.approx(
        462_000, rel=0.01)


def test_to_local_and_from_local_round_trip_within_a_decimetre() -> None:
    for east, north in ((0, 0), (120.0, -35.5), (-2500.0, 4000.0)):
        p = from_local(ORIGIN, east, north)
        e, n = to_local(ORIGIN, p)
        assert abs(e - east) < 0.1 and abs(n - north) < 0.1
        assert distance_m(ORIGIN, p) == pytest.approx(math.hypot(east, north), rel=1e-3,
                                                      abs=0.2)


def test_contains_square_inside_outside_edge_and_vertex() -> None:
    sq = _zone("sq", (0, 0), (100, 0), (100, 100), (0, 100))
    assert contains(sq, *_at(50, 50))
    assert not contains(sq, *_at(150, 50))
    assert not contains(sq, *_at(50, -1))
    assert contains(sq, *sq.polygon[2])  # a vertex
    p0, p1 = sq.polygon[0], sq.polygon[1]
    assert p0[0] == p1[0]  # the south edge runs along one latitude
    assert contains(sq, p0[0], (p0[1] + p1[1]) // 2)  # a point on that edge
    # a point level with a vertex, outside: the ray passes through the vertex
    assert not contains(sq, sq.polygon[1][0], sq.polygon[1][1] + 100)


def test_contains_concave_polygon_notch_is_outside() -> None:
    # a U: the notch between the arms is outside, the arms and the base inside
    u = _zone("u", (0, 0), (300, 0), (300, 300), (200, 300), (200, 100), (100, 100),
              (100, 300), (0, 300))
    assert contains(u, *_at(50, 250))
    assert contains(u, *_at(250, 250))
    assert contains(u, *_at(150, 50))
    assert not contains(u, *_at(150, 200))
    assert not contains(u, *_at(-10, 150))


def test_zones_at_lists_nested_zones_in_file_order() -> None:
    outer = _zone("outer", (0, 0), (500, 0), (500, 500), (0, 500), kind="port_area")
    inner = _zone("inner", (100, 100), (120, 100), (120, 105), (100, 105), kind="weighbridge")
    site = Site("s", "s", {"outer": outer, "inner": inner}, {}, {})
    assert [z.id for z in zones_at(site, *_at(110, 102))] == ["outer", "inner"]
    assert [z.id for z in zones_at(site, *_at(300, 300))] == ["outer"]
    assert zones_at(site, *_at(900, 900)) == []


def _corridor() -> Corridor:
    # east 1000 m (narrow, 40 m), then north 1000 m (wide, 200 m)
    return Corridor("c", "c", (_at(0, 0), _at(1000, 0), _at(1000, 1000)), (40.0, 200.0),
                    "a", "b", 30)


def test_corridor_distance_m_nearest_segment_and_index() -> None:
    c = _corridor()
    d, i = corridor_distance_m(c, *_at(500, 15))
    assert d == pytest.approx(15, abs=0.3) and i == 0
    d, i = corridor_distance_m(c, *_at(1050, 500))
    assert d == pytest.approx(50, abs=0.3) and i == 1
    d, i = corridor_distance_m(c, *_at(-30, -40))  # beyond the first point: to the endpoint
    assert d == pytest.approx(50, abs=0.3) and i == 0


def test_in_corridor_uses_each_segments_width() -> None:
    c = _corridor()
    assert in_corridor(c, *_at(500, 19))  # narrow band: 20 m each side
    assert not in_corridor(c, *_at(500, 25))
    assert in_corridor(c, *_at(500, 25), margin_m=6)
    assert in_corridor(c, *_at(1090, 500))  # wide band: 100 m each side
    assert not in_corridor(c, *_at(1110, 500))


def test_in_corridor_near_a_vertex_where_widths_change() -> None:
    c = _corridor()
    # 40 m before the corner, 30 m south of the narrow leg: nearest to the narrow segment
    p = _at(960, -30)
    d0, i = corridor_distance_m(c, *p)
    assert i == 0 and d0 == pytest.approx(30, abs=0.3)  # outside the narrow band...
    assert in_corridor(c, *p)  # ...but within the wide segment's 100 m of its end
    assert not in_corridor(c, *_at(900, -130))  # beyond both
    # outside the corner, past the vertex diagonally: 70 m away from it, inside the wide band
    assert in_corridor(c, *_at(1050, -50))
    assert not in_corridor(c, *_at(1080, -80))


def test_self_intersection_finds_a_bow_tie_and_passes_a_simple_polygon() -> None:
    bow = tuple(_at(e, n) for e, n in ((0, 0), (100, 100), (100, 0), (0, 100)))
    assert self_intersection(bow) == (0, 2)
    square = tuple(_at(e, n) for e, n in ((0, 0), (100, 0), (100, 100), (0, 100)))
    assert self_intersection(square) is None
    # a spike touching another edge counts
    touch = tuple(_at(e, n) for e, n in ((0, 0), (100, 0), (50, 0), (50, 100)))
    assert self_intersection(touch) is not None
