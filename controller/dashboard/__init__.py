"""The operators' dashboard: plain HTML, CSS and JavaScript files served at ``/ui/``.

No build step and nothing fetched from elsewhere (a port's network has no route to a CDN):
the files in ``static/`` are the whole of it. They need no token; every data call the pages
make goes to ``/api/`` with the token the user pasted at login, through the Gate.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"


def install(app: FastAPI) -> None:
    """Serve the dashboard's files at ``/ui/`` (``/ui`` redirects there)."""

    @app.get(PREFIX, include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse(PREFIX + "/")

    app.mount(PREFIX, StaticFiles(directory=str(STATIC), html=True), name="dashboard")
