"""`portwatch blend create|show` (ore blends, controller/blends.py) and `portwatch lot
recall LOT` (the recall list, controller/recall.py)."""

from __future__ import annotations

import datetime
import getpass
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import blends, recall
from controller.errors import ControllerError
from tools.cli_support import DbOpt, fail, open_db

console = Console()
blend_app = typer.Typer(help="Ore blends: input lots mixed into a new lot.",
                        no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a container
        return "cli:unknown"


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M:%SZ")


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, ensure_ascii=False))


def parse_input(text: str) -> blends.BlendInput:
    """``LOT=KG`` as a blend input; BadParameter saying the form otherwise."""
    lot, sep, kg = text.rpartition("=")
    if not sep or not lot or not kg.isdigit():
        raise typer.BadParameter(f"{text!r}: give LOT=KG, e.g. ORE-2026-0007=30000000")
    return blends.BlendInput(lot, int(kg))


def _show(b: dict[str, Any]) -> None:
    console.print(f"blend {b['blend_lot']}: {b['total_kg']} kg of {b['commodity']}, origin "
                  f"blend ({', '.join(b['origins'])}), by {b['actor']} at "
                  f"{_when(b['created_ms'])}: {b['reason']}")
    table = Table("input lot", "kg", "fraction")
    for i in b["inputs"]:
        table.add_row(i["lot"], str(i["kg"]), f"{i['fraction']:.2%}")
    console.print(table)


@blend_app.command("create")
def blend_create(
    blend_lot: Annotated[str, typer.Argument(help="the new lot the blend makes")],
    inputs: Annotated[list[str], typer.Option("--input", help="LOT=KG, once per input lot")],
    reason: Annotated[str, typer.Option("--reason", help="why (it goes to the ledger)")],
    as_json: JsonOpt = False, db: DbOpt = None,
) -> None:
    """Blend declared lots into a new lot (a blend decision); holds on inputs carry over.

    Example: portwatch blend create BL-2026-01 --input ORE-A=30000000 --input
    ORE-B=10000000 --reason "contract grade 62 % Fe"
    """
    parsed = [parse_input(i) for i in inputs]
    try:
        b = blends.create(open_db(db), blend_lot, parsed, reason=reason, actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    _print_json(b) if as_json else _show(b)


@blend_app.command("show")
def blend_show(blend_lot: Annotated[str, typer.Argument(help="a blend's lot id")],
               as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Show a blend: its inputs with kg and fraction.

    Example: portwatch blend show BL-2026-01 --json
    """
    try:
        b = blends.get(open_db(db), blend_lot)
    except ControllerError as exc:
        fail(str(exc))
    _print_json(b) if as_json else _show(b)


def lot_recall(lot: Annotated[str, typer.Argument(help="lot id, e.g. ORE-2026-0007")],
               as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """The recall list of a lot: every truck trip and rail car that carried it or a blend
    containing it (with the lot's fraction of what they carried).

    Example: portwatch lot recall ORE-2026-0007 --json
    """
    try:
        r = recall.get_recall_list(open_db(db), lot)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        _print_json(r)
        return
    trips = Table("trip", "plate", "lot", "share", "destination", "departed", "net kg",
                  "status", "arrived", title=f"trucks that carried {lot}")
    for t in r["trips"]:
        trips.add_row(t["trip_id"], t["plate"] or "", t["lot"], f"{t['fraction']:.0%}",
                      t["destination"] or "", _when(t["departed_ms"]), str(t["net_kg"]),
                      t["status"], _when(t["arrived_ts"]))
    cars = Table("train", "car", "lot", "share", "destination", "time", "kg", "weighed",
                 title=f"rail cars that carried {lot}")
    for c in r["cars"]:
        cars.add_row(c["train"], f"{c['initial']} {c['number']}", c["lot"],
                     f"{c['fraction']:.0%}", c["destination"] or "", _when(c["time_ms"]),
                     str(c["weight_kg"] or ""), "yes" if c["weighed"] else "manifest")
    console.print(trips)
    console.print(cars)
    blended = ", ".join(f"{b['lot']} ({b['fraction']:.0%})" for b in r["blends"]) or "none"
    console.print(f"blends containing {lot}: {blended}")
    console.print(f"{len(r['trips'])} trips ({r['kg']['trucks']} kg), {len(r['cars'])} cars "
                  f"({r['kg']['rail']} kg); list sha256 {r['hash']}")
