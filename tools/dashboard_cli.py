"""`portwatch dashboard`: the operators' dashboard's screenshots from a seeded demo store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tools.cli_support import fail

console = Console()
dashboard_app = typer.Typer(help="The operators' dashboard (served by the controller at /ui/).",
                            no_args_is_help=True)


@dashboard_app.command("screenshots")
def dashboard_screenshots(
    out: Annotated[Path, typer.Option(help="where the PNGs go")] = Path("docs/screenshots"),
) -> None:
    """Seed a demo store (devices, health, calibrations, a lot, trips on both corridors, gate
    decisions, alerts), serve the API and /ui/ over it on a free port, open each main page at
    1366x768 in headless chromium (Debian's /usr/bin/chromium) and write one PNG per page.

    Example: portwatch dashboard screenshots --out docs/screenshots
    """
    try:
        # imported here: it loads FastAPI's test client, whose import warns, and every
        # `portwatch` command would print that warning
        from tools import dashboard_demo

        files = dashboard_demo.screenshots(out, lambda m: console.print(m, highlight=False))
    except (RuntimeError, OSError) as exc:
        fail(f"{exc}")
    console.print(f"{len(files)} screenshots in {out}")
