"""Read a site file (YAML, or JSON, which YAML reads too) into a ``Site``, or say exactly what
is wrong and on which line.

The file is composed into YAML nodes first, so every mapping, list and value keeps its line;
pydantic then checks shapes and types (unknown keys are refused: a misspelt ``widths_m`` must
not silently fall back to a default), and the checks that span records (unique ids, known
zones, polygons that do not cross themselves) run last. Any failure raises ``SiteError``
with the line of the offending value, e.g.
``site.yaml line 42: corridor 'c-north' point 3: latitude 91.2 is outside -90..90``.

Coordinates are written as decimal degrees ``[lat, lon]`` and held as integer micro-degrees,
rounded from the decimal text as written (not from a binary float).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from controller.site import geometry
from controller.site.model import (
    WEIGHBRIDGE_ROLES,
    ZONE_KINDS,
    Corridor,
    DeviceSpec,
    Point,
    Site,
    SiteError,
    Zone,
)

Path_ = tuple[str | int, ...]
Number = StrictInt | StrictFloat
LatLon = Annotated[list[Number], Field(min_length=2, max_length=2)]
_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _RawZone(_Raw):
    id: Annotated[str, _ID]
    kind: str
    name: str = ""
    polygon: list[LatLon]


class _RawCorridor(_Raw):
    id: Annotated[str, _ID]
    name: str = ""
    from_zone: str
    to_zone: str
    max_minutes: Annotated[int, Field(gt=0, le=7 * 24 * 60)]
    points: list[LatLon]
    width_m: Number | None = None
    widths_m: list[Number] | None = None


class _RawDevice(_Raw):
    id: Annotated[str, _ID]
    kind: str
    zone: str
    role: str = ""


class _RawSite(_Raw):
    id: Annotated[str, _ID]
    name: str = ""
    zones: list[_RawZone]
    corridors: list[_RawCorridor] = []
    devices: list[_RawDevice] = []


class _Lines:
    """Line numbers of every node of the document, by path of keys and indexes."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.by_path: dict[Path_, int] = {}

    def line(self, path: Path_) -> int:
        """The line of the deepest node on ``path`` that the file has (0: none)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.by_path:
                return self.by_path[path[:n]]
        return 0

    def error(self, path: Path_, message: str) -> SiteError:
        return SiteError(message, self.line(path), self.source)


def _plain(node: yaml.Node, path: Path_, lines: _Lines, cons: yaml.SafeLoader) -> Any:
    """The Python value of ``node``, recording the line of it and of everything under it."""
    lines.by_path[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = cons.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise SiteError(f"key {key!r} is not a name", key_node.start_mark.line + 1,
                                lines.source)
            if key in out:  # YAML would keep the last silently; a site file must not
                raise SiteError(f"{_where(path)}key {key!r} is given twice",
                                key_node.start_mark.line + 1, lines.source)
            out[key] = _plain(value_node, (*path, key), lines, cons)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(v, (*path, i), lines, cons) for i, v in enumerate(node.value)]
    return cons.construct_object(node, deep=True)


def _where(path: Path_, data: Any = None) -> str:
    """A path as words for a message: ``corridor 'c-north' point 3: ``."""
    words: list[str] = []
    node = data
    i = 0
    while i < len(path):
        step = path[i]
        nxt = path[i + 1] if i + 1 < len(path) else None
        if step in ("zones", "corridors", "devices") and isinstance(nxt, int):
            item = node[step][nxt] if isinstance(node, dict) and step in node else None
            ident = item.get("id") if isinstance(item, dict) else None
            label = {"zones": "zone", "corridors": "corridor", "devices": "device"}[step]
            words.append(f"{label} {ident!r}" if isinstance(ident, str) else
                         f"{label} #{nxt + 1}")
            node = item
            i += 2
            continue
        if step in ("points", "polygon", "widths_m") and isinstance(nxt, int):
            label = {"points": "point", "polygon": "polygon point", "widths_m": "width"}[step]
            words.append(f"{label} {nxt + 1}")
            node = None
            i += 2
            continue
        if isinstance(step, str):
            words.append(step)
            node = node.get(step) if isinstance(node, dict) else None
        i += 1
    return " ".join(words) + ": " if words else ""


def _e6(value: float | int, limit: int, name: str) -> int:
    """Decimal degrees as integer micro-degrees; ValueError naming the axis when out of range."""
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:  # inf / nan
        raise ValueError(f"{name} {value} is not a number") from exc
    if not dec.is_finite() or not -limit <= dec <= limit:
        raise ValueError(f"{name} {value} is outside -{limit}..{limit}")
    return int((dec * 1_000_000).to_integral_value())


def _points(raw: list[list[float | int]], path: Path_, lines: _Lines, data: Any) -> tuple[Point,
                                                                                        ...]:
    out: list[Point] = []
    for i, (lat, lon) in enumerate(raw):
        at = (*path, i)
        try:
            p = (_e6(lat, 90, "latitude"), _e6(lon, 180, "longitude"))
        except ValueError as exc:
            raise lines.error(at, f"{_where(at, data)}{exc}") from None
        if out and out[-1] == p:
            raise lines.error(at, f"{_where(at, data)}repeats the point before it")
        out.append(p)
    return tuple(out)


def _validation_error(exc: ValidationError, lines: _Lines, data: Any) -> SiteError:
    errors = exc.errors()
    # an unknown key first: a misspelt key also makes the real one look missing
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path: Path_ = tuple(first["loc"])
    # a pydantic loc may carry a type tag (e.g. 'int' for a union member): keep real keys only
    clean: list[str | int] = []
    for n, step in enumerate(path):
        last_unknown = n == len(path) - 1 and first["type"] == "extra_forbidden"
        if isinstance(step, int) or step in _KNOWN_KEYS or last_unknown:
            clean.append(step)
    at = tuple(clean)
    msg = f"{first['msg']}, not {first['input']!r}"
    if any(step in ("int", "float") for step in path):  # a member of the Number union
        msg = f"expected a number, not {first['input']!r}"
    if first["type"] == "missing":
        msg = f"{path[-1]!s} is required"
    elif first["type"] == "extra_forbidden":
        msg = f"unknown key {path[-1]!s} (known: {', '.join(_known_for(at[:-1]))})"
    # a missing or unknown key is about the record holding it
    about = at[:-1] if first["type"] in ("missing", "extra_forbidden") else at
    return lines.error(at, f"{_where(about, data)}{msg}")


def _model_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


_KNOWN_KEYS = {*_model_keys(_RawSite), *_model_keys(_RawZone), *_model_keys(_RawCorridor),
               *_model_keys(_RawDevice)}


def _known_for(path: Path_) -> list[str]:
    model: type[BaseModel] = _RawSite
    if path and path[0] == "zones":
        model = _RawZone
    elif path and path[0] == "corridors":
        model = _RawCorridor
    elif path and path[0] == "devices":
        model = _RawDevice
    return _model_keys(model)


def _unique(kind: str, ids: list[str], lines: _Lines, data: Any) -> None:
    seen: set[str] = set()
    for i, ident in enumerate(ids):
        if ident in seen:
            at: Path_ = (kind, i, "id")
            raise lines.error(at, f"{_where(at[:2], data)}id {ident!r} is used twice")
        seen.add(ident)


def _zone(raw: _RawZone, i: int, lines: _Lines, data: Any) -> Zone:
    at: Path_ = ("zones", i)
    if raw.kind not in ZONE_KINDS:
        raise lines.error((*at, "kind"), f"{_where(at, data)}kind {raw.kind!r} is not one of "
                                         f"{', '.join(sorted(ZONE_KINDS))}")
    if len(raw.polygon) < 3:
        raise lines.error((*at, "polygon"), f"{_where(at, data)}a polygon needs at least 3 "
                                            f"points, it has {len(raw.polygon)}")
    polygon = _points(raw.polygon, (*at, "polygon"), lines, data)
    if polygon[0] == polygon[-1]:  # a ring closed by hand: the closing edge is implicit
        polygon = polygon[:-1]
        if len(polygon) < 3:
            raise lines.error((*at, "polygon"), f"{_where(at, data)}a polygon needs at least 3 "
                                                "distinct points")
    crossing = geometry.self_intersection(polygon)
    if crossing is not None:
        a, b = crossing
        raise lines.error((*at, "polygon", b), f"{_where(at, data)}the polygon crosses itself: "
                                               f"edge {a + 1}-{a + 2} meets edge {b + 1}-"
                                               f"{(b + 1) % len(polygon) + 1}")
    return Zone(id=raw.id, kind=raw.kind, name=raw.name or raw.id, polygon=polygon)


def _corridor(raw: _RawCorridor, i: int, zones: Mapping[str, Zone], lines: _Lines,
              data: Any) -> Corridor:
    at: Path_ = ("corridors", i)
    for key in ("from_zone", "to_zone"):
        ref = getattr(raw, key)
        if ref not in zones:
            raise lines.error((*at, key), f"{_where(at, data)}{key} {ref!r} is not a zone of "
                                          "this site")
    if len(raw.points) < 2:
        raise lines.error((*at, "points"), f"{_where(at, data)}a corridor needs at least 2 "
                                           "points")
    points = _points(raw.points, (*at, "points"), lines, data)
    n_seg = len(points) - 1
    if (raw.width_m is None) == (raw.widths_m is None):
        raise lines.error(at, f"{_where(at, data)}give either width_m (one width for every "
                              "segment) or widths_m (one per segment)")
    if raw.widths_m is not None:
        if len(raw.widths_m) != n_seg:
            raise lines.error((*at, "widths_m"), f"{_where(at, data)}widths_m has "
                                                 f"{len(raw.widths_m)} widths for {n_seg} "
                                                 "segments: give one per segment")
        widths = tuple(float(w) for w in raw.widths_m)
        bad = next((j for j, w in enumerate(widths) if not 0 < w < 10_000), None)
        if bad is not None:
            wat = (*at, "widths_m", bad)
            raise lines.error(wat, f"{_where(wat, data)}{raw.widths_m[bad]} m: a width is "
                                   "over 0 and under 10 km")
    else:
        assert raw.width_m is not None
        if not 0 < raw.width_m < 10_000:
            raise lines.error((*at, "width_m"), f"{_where(at, data)}width_m {raw.width_m}: a "
                                                "width is over 0 and under 10 km")
        widths = (float(raw.width_m),) * n_seg
    return Corridor(id=raw.id, name=raw.name or raw.id, points=points, widths_m=widths,
                    from_zone=raw.from_zone, to_zone=raw.to_zone, max_minutes=raw.max_minutes)


def _device(raw: _RawDevice, i: int, zones: Mapping[str, Zone], lines: _Lines,
            data: Any) -> DeviceSpec:
    at: Path_ = ("devices", i)
    if raw.zone not in zones:
        raise lines.error((*at, "zone"), f"{_where(at, data)}zone {raw.zone!r} is not a zone "
                                         "of this site")
    if raw.kind == "weighbridge" and raw.role not in WEIGHBRIDGE_ROLES:
        raise lines.error((*at, "role") if raw.role else at,
                          f"{_where(at, data)}a weighbridge's role is 'in' or 'out', not "
                          f"{raw.role!r}")
    if raw.kind != "weighbridge" and raw.role:
        raise lines.error((*at, "role"), f"{_where(at, data)}only weighbridges have a role")
    return DeviceSpec(id=raw.id, kind=raw.kind, zone=raw.zone, role=raw.role)


def parse_site(text: str, source: str = "site") -> Site:
    """A ``Site`` from the text of a site file; ``source`` names it in errors."""
    lines = _Lines(source)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SiteError(f"not valid YAML/JSON: {exc.problem or exc.context}",
                        mark.line + 1 if mark else 0, source) from None
    if node is None:
        raise SiteError("the file is empty: a site has an id, zones, corridors and devices",
                        1, source)
    cons = yaml.SafeLoader("")
    data = _plain(node, (), lines, cons)
    if not isinstance(data, dict):
        raise SiteError("a site file is a mapping with id, name, zones, corridors, devices",
                        lines.line(()), source)
    try:
        raw = _RawSite.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, lines, data) from None
    for kind, items in (("zones", raw.zones), ("corridors", raw.corridors),
                        ("devices", raw.devices)):
        _unique(kind, [item.id for item in items], lines, data)
    zones = {z.id: _zone(z, i, lines, data) for i, z in enumerate(raw.zones)}
    corridors = {c.id: _corridor(c, i, zones, lines, data) for i, c in enumerate(raw.corridors)}
    devices = {d.id: _device(d, i, zones, lines, data) for i, d in enumerate(raw.devices)}
    return Site(id=raw.id, name=raw.name or raw.id, zones=MappingProxyType(zones),
                corridors=MappingProxyType(corridors), devices=MappingProxyType(devices))


def load_site(path: str | Path) -> Site:
    """The site described by the file at ``path``; SiteError with the line when it is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SiteError("no such file: pass the path of a site YAML or JSON file", 0,
                        str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteError(f"cannot read it: {exc}", 0, str(p)) from None
    return parse_site(text, str(p))
