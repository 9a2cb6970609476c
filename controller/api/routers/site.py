"""The site description's geometry, read-only: what the dashboard draws its map from."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from controller import auth
from controller.api.dependencies import require
from controller.api.errors import responses
from controller.errors import Unavailable
from controller.site import Site, SiteError, current_site

router = APIRouter(prefix="/api/v1", tags=["site"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))

PointE6 = list[int]  # [lat_e6, lon_e6]


class SiteZone(BaseModel):
    id: str
    kind: str
    name: str
    polygon: list[PointE6] = Field(description="[lat_e6, lon_e6] points, closed implicitly")


class SiteCorridor(BaseModel):
    id: str
    name: str
    from_zone: str
    to_zone: str
    max_minutes: int
    points: list[PointE6] = Field(description="the centre line, [lat_e6, lon_e6] points")
    widths_m: list[float] = Field(description="one width per segment, metres")


class SiteDevice(BaseModel):
    id: str
    kind: str
    zone: str
    role: str


class SiteGeometry(BaseModel):
    id: str
    name: str
    zones: list[SiteZone]
    corridors: list[SiteCorridor]
    devices: list[SiteDevice]


def to_geometry(site: Site) -> SiteGeometry:
    """The API's view of a loaded site (micro-degrees, file order)."""
    return SiteGeometry(
        id=site.id, name=site.name,
        zones=[SiteZone(id=z.id, kind=z.kind, name=z.name,
                        polygon=[list(p) for p in z.polygon]) for z in site.zones.values()],
        corridors=[SiteCorridor(id=c.id, name=c.name, from_zone=c.from_zone,
                                to_zone=c.to_zone, max_minutes=c.max_minutes,
                                points=[list(p) for p in c.points],
                                widths_m=list(c.widths_m)) for c in site.corridors.values()],
        devices=[SiteDevice(id=d.id, kind=d.kind, zone=d.zone, role=d.role)
                 for d in site.devices.values()])


@router.get("/site", response_model=SiteGeometry,
            summary="The site's zones, corridors and devices (coordinates in micro-degrees)")
def get_site() -> SiteGeometry:
    try:
        return to_geometry(current_site())
    except SiteError as exc:
        raise Unavailable(f"the site description cannot be used: {exc}; fix the file "
                          "($PORTWATCH_SITE_FILE or --site-file) and restart") from exc
