"""The site description: zones, approved corridors and the devices that stand in them.

Immutable values built by ``controller.site.loader`` from a validated file. Coordinates are
integer millionths of a degree, ``(lat_e6, lon_e6)``, as positions events and JT/T 808
carry them, so a zone test on a fix never meets a float rounding surprise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ZONE_KINDS: frozenset[str] = frozenset({
    "port_area", "bonded_yard", "berth", "silo", "gate", "weighbridge", "rail_yard",
    "parking", "destination",
})
WEIGHBRIDGE_ROLES: frozenset[str] = frozenset({"in", "out"})

Point = tuple[int, int]  # (lat_e6, lon_e6)


class SiteError(ValueError):
    """A site file that cannot be used; ``line`` is its 1-based line (0 when unknown)."""

    def __init__(self, message: str, line: int = 0, source: str = "") -> None:
        where = source or "site"
        prefix = f"{where} line {line}: " if line else f"{where}: "
        super().__init__(prefix + message)
        self.line = line
        self.source = source
        self.detail = message


@dataclass(frozen=True)
class Zone:
    """A named area: a simple polygon of at least three points (closed implicitly)."""

    id: str
    kind: str
    name: str
    polygon: tuple[Point, ...]


@dataclass(frozen=True)
class Corridor:
    """An approved road from one zone to another: a polyline with one width per segment.

    ``max_minutes`` bounds the expected trip duration along it.
    """

    id: str
    name: str
    points: tuple[Point, ...]
    widths_m: tuple[float, ...]
    from_zone: str
    to_zone: str
    max_minutes: int


@dataclass(frozen=True)
class DeviceSpec:
    """A device's place on the site; ``role`` is "in" or "out" for weighbridges, else ""."""

    id: str
    kind: str
    zone: str
    role: str


@dataclass(frozen=True)
class Site:
    """One port: its zones, corridors and devices, each keyed by id in file order."""

    id: str
    name: str
    zones: Mapping[str, Zone]
    corridors: Mapping[str, Corridor]
    devices: Mapping[str, DeviceSpec]

    def zones_of_kind(self, kind: str) -> list[Zone]:
        """The zones of one kind, in file order."""
        return [z for z in self.zones.values() if z.kind == kind]

    def weighbridge(self, role: str) -> DeviceSpec | None:
        """The first weighbridge device with ``role`` ("in" or "out"), or None."""
        for dev in self.devices.values():
            if dev.kind == "weighbridge" and dev.role == role:
                return dev
        return None
