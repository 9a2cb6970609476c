"""`portwatch calibration add|list`: instruments' calibration certificates
(controller/calibration.py); `portwatch lot balance|draft-survey`: a lot's mass balance
(controller/mass_balance.py), registered on the lot group by tools/cli.py."""

from __future__ import annotations

import datetime
import getpass
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import calibration, mass_balance
from controller.errors import ControllerError
from controller.storage import now_ms
from tools.cli_support import DbOpt, fail, open_db

console = Console()
calibration_app = typer.Typer(help="Instruments' calibration certificates: a scale whose "
                              "certificate has expired cannot release cargo.",
                              no_args_is_help=True)
DeviceArg = Annotated[str, typer.Argument(help="the instrument's device id, e.g. wb-out")]
LotArg = Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a container
        return "cli:unknown"


def _ms(text: str, what: str) -> int:
    """A date (2026-12-01) or ISO time (2026-12-01T08:00:00Z) in UTC, as epoch ms."""
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{what} {text!r}: give a date like 2026-12-01 or 2026-12-01T08:00:00Z")
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return int(when.timestamp() * 1000)


def _day(ms: int) -> str:
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%MZ")


@calibration_app.command("add")
def calibration_add(
    device: DeviceArg,
    certificate: Annotated[str, typer.Option("--certificate", help="the certificate's id")],
    accuracy_class: Annotated[str, typer.Option(
        "--class", help="III (truck scale, R76), 0.2 / 0.5 / 1 / 2 (rail, R106) or analyzer")],
    issued: Annotated[str, typer.Option("--issued", help="valid from (UTC date or time)")],
    expires: Annotated[str, typer.Option("--expires", help="valid until, exclusive")],
    issuer: Annotated[str, typer.Option("--issuer", help="the verification body")],
    e_kg: Annotated[int | None, typer.Option(
        "--e-kg", help="verification interval e in kg (required for R76 classes)")] = None,
    db: DbOpt = None,
) -> None:
    """Record a calibration certificate of an instrument (a ledger decision).

    Example: portwatch calibration add wb-out --certificate LN-2026-1187 --class III
    --e-kg 20 --issued 2026-06-01 --expires 2027-06-01 --issuer "Liaoning metrology"
    """
    try:
        row = calibration.add(open_db(db), device, certificate_id=certificate,
                              accuracy_class=accuracy_class, e_kg=e_kg,
                              issued_ms=_ms(issued, "--issued"),
                              expires_ms=_ms(expires, "--expires"), issuer=issuer,
                              actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"{row['device_id']}: certificate {row['certificate_id']} class "
                  f"{row['accuracy_class']}, valid {_day(row['issued_ms'])} to "
                  f"{_day(row['expires_ms'])}")


@calibration_app.command("list")
def calibration_list(
    due_within_days: Annotated[float | None, typer.Option(
        "--due-within-days", help="only each instrument's last certificate expiring within "
        "this many days (expired ones too)")] = None,
    device: Annotated[str | None, typer.Option("--device", help="only this device")] = None,
    db: DbOpt = None,
) -> None:
    """Calibration certificates by expiry, or the instruments due for calibration.

    Example: portwatch calibration list --due-within-days 30
    """
    store = open_db(db)
    try:
        rows = calibration.due(store.conn, within_days=due_within_days, now=now_ms(),
                               device_id=device)
    except ControllerError as exc:
        fail(str(exc))
    table = Table("device", "certificate", "class", "e kg", "issued", "expires", "issuer")
    for r in rows:
        table.add_row(r["device_id"], r["certificate_id"], r["accuracy_class"],
                      "" if r["e_kg"] is None else str(r["e_kg"]), _day(r["issued_ms"]),
                      _day(r["expires_ms"]), r["issuer"])
    console.print(table)


def _print_balance(b: dict[str, Any]) -> None:
    table = Table("figure", "kg", "tolerance kg", "from")
    table.add_row("declared", str(b["declared_kg"]), "", "declaration")
    if b["draft_survey_kg"] is not None:
        table.add_row("draft survey", str(b["draft_survey_kg"]), "", "surveyor")
    u, d = b["unloaded"], b["dispatched"]
    table.add_row("unloaded", str(u["kg"]), str(u["tolerance_kg"]),
                  f"{u['source']} ({u['readings']} weighings)")
    table.add_row("dispatched by truck", str(d["truck"]["kg"]), str(d["truck"]["tolerance_kg"]),
                  f"{d['truck']['trips']} trips")
    table.add_row("dispatched by rail", str(d["rail"]["kg"]), str(d["rail"]["tolerance_kg"]),
                  f"{d['rail']['cars']} cars")
    table.add_row("remaining", str(b["remaining_kg"]), "", "unloaded - dispatched")
    console.print(f"lot {b['lot_id']} ({b['status']})")
    console.print(table)
    for item in b["discrepancies"]:
        console.print(f"[red]{item['code']}[/red]: {item['text']}")
    if b["out_of_calibration_readings"]:
        console.print(f"{b['out_of_calibration_readings']} reading(s) from scales out of "
                      "calibration")
    for note in b["notes"]:
        console.print(f"note: {note}")


def lot_balance(lot: LotArg, as_json: Annotated[bool, typer.Option(
        "--json", help="the balance as JSON")] = False, db: DbOpt = None) -> None:
    """A lot's mass balance, evaluated now (raises or clears mass_balance_discrepancy).

    Example: portwatch lot balance LOT-2026-0042
    """
    try:
        b = mass_balance.evaluate_now(open_db(db), lot)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(b))
    else:
        _print_balance(b)


def lot_draft_survey(lot: LotArg,
                     kg: Annotated[int, typer.Option("--kg", help="the survey's figure in kg")],
                     surveyor: Annotated[str, typer.Option("--surveyor",
                                                           help="who surveyed")],
                     db: DbOpt = None) -> None:
    """Enter a draft survey's figure for a lot (a ledger decision), then its balance.

    Example: portwatch lot draft-survey LOT-2026-0042 --kg 52340000 --surveyor "SGS Dalian"
    """
    try:
        b = mass_balance.add_draft_survey(open_db(db), lot, kg=kg, surveyor=surveyor,
                                          actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    _print_balance(b)
