"""What every `portwatch` command group shares: the --db and --site options, the error
line, and opening the store (a missing one is an error that says what to run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from controller.errors import ControllerError
from controller.storage import Store, open_store
from tools import settings

err = Console(stderr=True)

DbOpt = Annotated[Path | None, typer.Option(
    "--db", envvar="PORTWATCH_DB", help="controller store [default: var/portwatch.db]")]
SiteOpt = Annotated[str | None, typer.Option(
    "--site", envvar="PORTWATCH_SITE", help=f"site id [default: {settings.DEFAULT_SITE}]")]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code``."""
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def open_db(db: Path | None, *, create: bool = False) -> Store:
    """The store at --db / $PORTWATCH_DB / the default; a missing one is an error unless
    the command creates stores."""
    try:
        return open_store(db or settings.default_db(), create=create)
    except ControllerError as exc:
        fail(str(exc))
