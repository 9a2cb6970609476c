"""`portwatch lot …`: put lots on hold, release them, list holds (controller/holds.py)."""

from __future__ import annotations

import datetime
import getpass
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from controller import holds as holds_mod
from controller.errors import ControllerError
from tools.cli_support import DbOpt, fail, open_db

console = Console()
err = Console(stderr=True, soft_wrap=True)
lot_app = typer.Typer(help="Lot holds: a lot on hold is denied at the out-gate.",
                      no_args_is_help=True)
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (it goes to the ledger)")]




def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a container
        return "cli:unknown"


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@lot_app.command("hold")
def lot_hold(lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
             reason: ReasonOpt, db: DbOpt = None) -> None:
    """Put a lot on hold: its trucks are denied at the out-gate until it is released.

    Example: portwatch lot hold LOT-2026-0042 --reason "phytosanitary inspection pending"
    """
    try:
        h = holds_mod.hold(open_db(db), lot, reason=reason, actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {h['lot']} on hold (hold {h['id']}, {_when(h['held_ms'])})")


@lot_app.command("release")
def lot_release(lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
                reason: ReasonOpt, db: DbOpt = None) -> None:
    """Release a lot's active hold.

    Example: portwatch lot release LOT-2026-0042 --reason "inspection passed, cert 7781"
    """
    try:
        h = holds_mod.release(open_db(db), lot, reason=reason, actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {h['lot']} released (hold {h['id']}, held since "
                  f"{_when(h['held_ms'])})")


@lot_app.command("holds")
def lot_holds(all_: Annotated[bool, typer.Option("--all", help="released holds too")] = False,
              lot: Annotated[str | None, typer.Option(help="only this lot")] = None,
              limit: int = 50, db: DbOpt = None) -> None:
    """List the lots on hold, newest first.

    Example: portwatch lot holds --all --lot LOT-2026-0042
    """
    table = Table("id", "lot", "reason", "by", "held", "released", "released by")
    try:
        rows = holds_mod.list_holds(open_db(db), active=None if all_ else True, lot=lot,
                                    limit=limit)
    except ControllerError as exc:
        fail(str(exc))
    for h in rows:
        table.add_row(str(h["id"]), h["lot"], h["reason"], h["actor"], _when(h["held_ms"]),
                      _when(h["released_ms"]), h["released_by"] or "")
    console.print(table)
