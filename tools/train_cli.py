"""`portwatch train`: rail train manifests on the store directly, as /api/v1/trains does
(controller/trains.py); each change is a ``train`` ledger decision with ``cli:<os user>``
as actor."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import trains as trains_mod
from controller.errors import ControllerError
from tools.cli_support import DbOpt, fail, open_db

console = Console()
train_app = typer.Typer(help="Rail train manifests: declare, list, show, release.",
                        no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z" if ms else "-"


def parse_car(spec: str) -> dict[str, Any]:
    """``INITIAL:NUMBER[:LOT[:DESTINATION[:DECLARED_KG]]]`` as a manifest car."""
    parts = spec.split(":")
    if not 2 <= len(parts) <= 5 or not parts[1].isdigit():
        fail(f"--car {spec!r} is not INITIAL:NUMBER[:LOT[:DESTINATION[:KG]]] "
             "(e.g. DLCX:100001:LOT-2026-0042:dest-feed-mill:80000)")
    car: dict[str, Any] = {"initial": parts[0].upper(), "number": int(parts[1])}
    if len(parts) > 2 and parts[2]:
        car["lot"] = parts[2]
    if len(parts) > 3 and parts[3]:
        car["destination"] = parts[3]
    if len(parts) > 4 and parts[4]:
        if not parts[4].isdigit():
            fail(f"--car {spec!r}: the declared weight is whole kg")
        car["declared_kg"] = int(parts[4])
    return car


@train_app.command("manifest")
def manifest(
    train_id: Annotated[str, typer.Argument(help="the train's id")],
    reader: Annotated[str, typer.Option(help="the rail reader's device id")] = "rail-1",
    direction: Annotated[str, typer.Option(help="in (into the port) or out")] = "out",
    car: Annotated[list[str] | None, typer.Option(
        help="a car in train order, INITIAL:NUMBER[:LOT[:DESTINATION[:KG]]] (repeat)")] = None,
    from_json: Annotated[Path | None, typer.Option(
        "--from-json", help="read the cars from a JSON list of {initial, number, lot, "
        "destination, declared_kg}")] = None,
    note: Annotated[str | None, typer.Option(help="a note for the ledger")] = None,
    db: DbOpt = None,
) -> None:
    """Declare a train's manifest; the rail reader's next passage in that direction is
    reconciled against it (missing, unexpected, reordered, unreadable cars, weights).

    Example: portwatch train manifest T-1 --reader rail-1 --car DLCX:100001:LOT-2026-0042
    --car DLCX:100002:LOT-2026-0042:dest-feed-mill:80000
    """
    cars = [parse_car(c) for c in car or []]
    if from_json is not None:
        try:
            cars += json.loads(from_json.read_text())
        except (OSError, ValueError) as exc:
            fail(f"--from-json {from_json}: {exc}")
    try:
        row = trains_mod.declare(open_db(db), {"train_id": train_id, "reader": reader,
                                               "direction": direction, "cars": cars,
                                               "note": note},
                                 actor=f"cli:{getpass.getuser()}")
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"train [bold]{row['train_id']}[/] manifest: {len(row['cars'])} cars, "
                  f"reader {row['reader']} {row['direction']}", highlight=False)


@train_app.command("list")
def list_trains(
    status: Annotated[str | None, typer.Option(
        help="open, passed, released or cancelled")] = None,
    limit: int = 50, as_json: JsonOpt = False, db: DbOpt = None,
) -> None:
    """List train manifests, newest first.

    Example: portwatch train list --status open
    """
    try:
        rows = trains_mod.list_trains(open_db(db), status=status, limit=limit)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table("train", "status", "reader", "dir", "cars", "declared", "passage")
    for r in rows:
        passage = f"{r['passage_device']}/{r['passage_seq']}" if r["passage_device"] else "-"
        table.add_row(r["train_id"], r["status"], r["reader"], r["direction"],
                      str(r["cars"]), _when(r["created_ms"]), passage)
    console.print(table)


@train_app.command("show")
def show(train_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """One train: its manifest, lots on hold and the passage matched to it.

    Example: portwatch train show T-1
    """
    try:
        t = trains_mod.show(open_db(db), train_id)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(t))
        return
    console.print(f"train [bold]{t['train_id']}[/] {t['status']} reader {t['reader']} "
                  f"{t['direction']}; held lots: {', '.join(t['held_lots']) or 'none'}",
                  highlight=False)
    table = Table("#", "car", "lot", "destination", "declared kg")
    for i, c in enumerate(t["cars"], 1):
        table.add_row(str(i), f"{c['initial']} {c['number']}", c["lot"] or "-",
                      c["destination"] or "-", str(c["declared_kg"] or "-"))
    console.print(table)
    p = t["passage"]
    if p:
        console.print(f"passage {p['device_id']}/{p['seq']} at {_when(p['started_ts'])}: "
                      f"{p['cars']} cars ({p['unreadable']} unreadable), {p['locos']} locos, "
                      f"{p['axles_counted']} axles, {p['speed_dkmh'] / 10:.1f} km/h",
                      highlight=False)


@train_app.command("release")
def release(train_id: str, reason: Annotated[str, typer.Option(
        "--reason", "-m", help="why (for the ledger)")] = "dispatched",
        db: DbOpt = None) -> None:
    """Dispatch a train; refused, naming them, while a lot on it is on hold.

    Example: portwatch train release T-1 -m "dispatched to the feed mill"
    """
    try:
        t = trains_mod.release(open_db(db), train_id, actor=f"cli:{getpass.getuser()}",
                               reason=reason)
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"train [bold]{t['train_id']}[/] released", highlight=False)
