"""The site the controller supervises: zones, approved corridors, devices (``load_site``).

``current_site()`` is the site the controller runs with: the file named by
``$PORTWATCH_SITE_FILE``, else ``$PORTWATCH_SITE`` when that names a file (a value ending in
.yaml, .yml or .json, or holding a '/'; a bare word there is the site id used in MQTT topics,
not a file), else the bundled demo site. ``set_site(path_or_site)`` overrides both (the
controller's ``--site-file`` option, tests); ``set_site(None)`` goes back to the default.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from controller.site.loader import load_site, parse_site
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

__all__ = [
    "DEMO_SITE_PATH",
    "WEIGHBRIDGE_ROLES",
    "ZONE_KINDS",
    "Corridor",
    "DeviceSpec",
    "Point",
    "Site",
    "SiteError",
    "Zone",
    "current_site",
    "load_site",
    "parse_site",
    "set_site",
    "site_path_from_env",
]

DEMO_SITE_PATH = Path(__file__).parent / "sites" / "demo-grain-port.yaml"

_lock = threading.Lock()
_override: Site | None = None
_cache: dict[tuple[str, int, int], Site] = {}


def site_path_from_env() -> Path:
    """The site file the environment asks for, or the bundled demo site."""
    explicit = os.environ.get("PORTWATCH_SITE_FILE")
    if explicit:
        return Path(explicit)
    value = os.environ.get("PORTWATCH_SITE", "")
    if value.endswith((".yaml", ".yml", ".json")) or "/" in value:
        return Path(value)
    return DEMO_SITE_PATH


def _load_cached(path: Path) -> Site:
    """Load ``path`` once per version of the file (its mtime and size)."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return load_site(path)  # raises SiteError naming the file
    with _lock:
        site = _cache.get(key)
    if site is None:
        site = load_site(path)
        with _lock:
            _cache[key] = site
    return site


def current_site() -> Site:
    """The site the controller runs with (see the module docstring); SiteError if unusable."""
    with _lock:
        override = _override
    return override if override is not None else _load_cached(site_path_from_env())


def set_site(path_or_site: Site | str | Path | None) -> Site | None:
    """Run with this site (a ``Site`` or a file, loaded now: SiteError if bad); None resets."""
    global _override
    site = None
    if isinstance(path_or_site, Site):
        site = path_or_site
    elif path_or_site is not None:
        site = load_site(path_or_site)
    with _lock:
        _override = site
    return site
