"""`portwatch site`: check a site description file, show the site the controller runs with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from controller.site import Site, SiteError, current_site, load_site, site_path_from_env
from controller.site.geometry import centroid, distance_m, polyline_length_m

console = Console()
err = Console(stderr=True)

site_app = typer.Typer(help="The site description: zones, corridors, devices.",
                       no_args_is_help=True)


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def summary(site: Site) -> list[Table]:
    """Tables describing a site: its zones, corridors (length, widths, distance from the
    start zone to the destination) and devices."""
    zones = Table(title=f"site {site.id}: {site.name}", title_justify="left")
    for col in ("zone", "kind", "name", "points", "centre (lat, lon)"):
        zones.add_column(col, no_wrap=col in ("zone", "kind"))
    for z in site.zones.values():
        lat, lon = centroid(z)
        zones.add_row(z.id, z.kind, z.name, str(len(z.polygon)),
                      f"{lat / 1e6:.6f}, {lon / 1e6:.6f}")
    corridors = Table(title="corridors (km: along it; direct: zone to zone)",
                      title_justify="left")
    for col in ("corridor", "from -> to", "pts", "km", "direct", "width m", "max min"):
        # ids and figures whole (a reader copies them); only the route may wrap
        corridors.add_column(col, no_wrap=col != "from -> to",
                             justify="left" if col in ("corridor", "from -> to") else "right")
    for c in site.corridors.values():
        straight = distance_m(centroid(site.zones[c.from_zone]), centroid(site.zones[c.to_zone]))
        widths = (f"{min(c.widths_m):g}" if min(c.widths_m) == max(c.widths_m)
                  else f"{min(c.widths_m):g}-{max(c.widths_m):g}")
        corridors.add_row(c.id, f"{c.from_zone} -> {c.to_zone}", str(len(c.points)),
                          f"{polyline_length_m(c.points) / 1000:.1f}", f"{straight / 1000:.1f}",
                          widths, str(c.max_minutes))
    devices = Table(title="devices", title_justify="left")
    for col in ("device", "kind", "zone", "role"):
        devices.add_column(col)
    for d in site.devices.values():
        devices.add_row(d.id, d.kind, d.zone, d.role or "-")
    return [zones, corridors, devices]


@site_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="a site description, YAML or JSON")],
) -> None:
    """Load a site file and print what it describes, or the first error with its line
    (exit 2).

    Example: portwatch site check controller/site/sites/demo-grain-port.yaml
    """
    try:
        site = load_site(file)
    except SiteError as exc:
        _fail(str(exc), 2)
    for table in summary(site):
        console.print(table)
    console.print(f"{file}: ok ({len(site.zones)} zones, {len(site.corridors)} corridors, "
                  f"{len(site.devices)} devices)", highlight=False, soft_wrap=True)


@site_app.command("show")
def show() -> None:
    """Print the site the controller runs with: $PORTWATCH_SITE_FILE, else $PORTWATCH_SITE
    when it names a .yaml/.json file, else the bundled demo site.

    Example: portwatch site show  (after export PORTWATCH_SITE_FILE=/etc/portwatch/site.yaml)
    """
    try:
        site = current_site()
    except SiteError as exc:
        _fail(str(exc), 2)
    console.print(f"site file: {site_path_from_env()}", highlight=False)
    for table in summary(site):
        console.print(table)
