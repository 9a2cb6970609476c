"""`portwatch lot …`: declare lots, move them along their lifecycle, show them
(controller/lots.py); put them on hold, release them, approve quarantine releases, list
holds (controller/holds.py)."""

from __future__ import annotations

import datetime
import getpass
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import auth, lots
from controller import holds as holds_mod
from controller.errors import ControllerError, NotAllowed
from tools.cli_support import DbOpt, fail, open_db

console = Console()
err = Console(stderr=True, soft_wrap=True)
lot_app = typer.Typer(help="Lots from vessel to release, and their holds (a lot on hold "
                      "is denied at the out-gate).", no_args_is_help=True)
ReasonOpt = Annotated[str, typer.Option("--reason", help="why (it goes to the ledger)")]
LotArg = Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")]
KindOpt = Annotated[str, typer.Option(
    "--kind", help="manual, quarantine (its release needs two release officers), recall or "
    "blend_input")]


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
def lot_hold(lot: LotArg, reason: ReasonOpt, kind: KindOpt = "manual",
             db: DbOpt = None) -> None:
    """Put a lot on hold: its trucks are denied at the out-gate until it is released.

    Example: portwatch lot hold LOT-2026-0042 --kind quarantine --reason "phytosanitary
    inspection pending"
    """
    try:
        h = holds_mod.hold(open_db(db), lot, reason=reason, actor=_actor(), kind=kind)
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {h['lot']} on {h['kind']} hold (hold {h['id']}, "
                  f"{_when(h['held_ms'])})")


@lot_app.command("release")
def lot_release(lot: LotArg, reason: ReasonOpt,
                kind: Annotated[str | None, typer.Option(
                    "--kind", help="which hold, when the lot has several")] = None,
                db: DbOpt = None) -> None:
    """Release a lot's active hold (a quarantine hold: see approve-release).

    Example: portwatch lot release LOT-2026-0042 --reason "inspection passed, cert 7781"
    """
    try:
        h = holds_mod.release(open_db(db), lot, reason=reason, actor=_actor(), kind=kind)
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
    table = Table("id", "lot", "kind", "reason", "by", "held", "released", "released by",
                  "approvals")
    try:
        store = open_db(db)
        rows = [holds_mod.with_approvals(store, h) for h in holds_mod.list_holds(
            store, active=None if all_ else True, lot=lot, limit=limit)]
    except ControllerError as exc:
        fail(str(exc))
    for h in rows:
        table.add_row(str(h["id"]), h["lot"], h["kind"], h["reason"], h["actor"],
                      _when(h["held_ms"]), _when(h["released_ms"]), h["released_by"] or "",
                      _approvals(h))
    console.print(table)


def _approvals(h: dict[str, Any]) -> str:
    if not h["approvals"] and not h["needed"]:
        return ""
    done = ", ".join(h["approvals"])
    return f"{done} ({h['needed']} more needed)" if h["needed"] else done


@lot_app.command("approve-release")
def lot_approve_release(
        hold_id: Annotated[int, typer.Argument(help="the hold's id (portwatch lot holds)")],
        reason: ReasonOpt,
        token: Annotated[str, typer.Option(
            "--token", envvar="PW_TOKEN", help="your release_officer API token (who approves)",
            show_default=False)],
        db: DbOpt = None) -> None:
    """Approve the release of a quarantine hold as a release officer: the second approval,
    by a different officer, releases it.

    Example: portwatch lot approve-release 7 --reason "lab certificate 2026-551 clean"
    --token $PW_TOKEN
    """
    try:
        store = open_db(db)
        name, role = auth.authenticate(store, token)
        if role not in holds_mod.APPROVE_ROLES:
            raise NotAllowed(f"token {name!r} has role {role!r}: approving a release needs a "
                             "release_officer token (`portwatch token create --role "
                             "release_officer`)")
        h = holds_mod.approve_release(store, hold_id, reason=reason,
                                      officer=f"token:{name} ({role})")
    except ControllerError as exc:
        fail(str(exc))
    if h["needed"]:
        console.print(f"hold {h['id']} on lot {h['lot']}: approved by {name}; "
                      f"{h['needed']} more approval by another release officer needed")
    else:
        console.print(f"hold {h['id']} on lot {h['lot']} released "
                      f"(approved by {', '.join(h['approvals'])})")


@lot_app.command("declare")
def lot_declare(
        lot: LotArg,
        declaration: Annotated[str, typer.Option("--declaration", help="customs declaration "
                                                 "number")],
        commodity: Annotated[str, typer.Option(help="e.g. wheat, iron ore fines")],
        hs_code: Annotated[str, typer.Option("--hs", help="HS code, 6-10 digits")],
        origin: Annotated[str, typer.Option(help="origin country, ISO 3166 alpha-2")],
        vessel: Annotated[str, typer.Option(help="the vessel that brought it")],
        kg: Annotated[int, typer.Option("--kg", help="declared weight in kg")],
        kind: Annotated[str, typer.Option(help="grain, ore or other")] = "grain",
        db: DbOpt = None) -> None:
    """Declare a lot (status declared).

    Example: portwatch lot declare LOT-2026-0042 --declaration CN-DL-2026-118733
    --commodity wheat --hs 100199 --origin UA --vessel "MV Star Pisces" --kg 52000000
    """
    fields = {"lot_id": lot, "declaration_no": declaration, "commodity": commodity,
              "hs_code": hs_code, "origin_country": origin, "vessel": vessel,
              "declared_kg": kg, "kind": kind}
    try:
        row = lots.declare(open_db(db), fields, actor=_actor())
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {row['lot_id']} declared ({row['commodity']}, {row['declared_kg']} kg "
                  f"from {row['origin_country']} on {row['vessel']})")


@lot_app.command("status")
def lot_status(lot: LotArg,
               status: Annotated[str, typer.Argument(help=", ".join(lots.STATUSES))],
               reason: ReasonOpt, db: DbOpt = None,
               before_test: Annotated[bool, typer.Option(
                   "--before-test", help="release an ore lot before its lab result (a "
                   "failing result recalls it)")] = False) -> None:
    """Move a lot on (declared, anchorage_quarantine, unloading, stored, released,
    departed; held comes and goes with holds).

    Example: portwatch lot status LOT-2026-0042 unloading --reason "berth-1 discharge"
    """
    try:
        store = open_db(db)
        row = lots.change_status(store, lot, status, reason=reason, actor=_actor(),
                                 released_before_test=before_test)
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {row['lot_id']} is {row['status']} ({_when(row['updated_ms'])})")


@lot_app.command("list")
def lot_list(status: Annotated[str | None, typer.Option(help="only this status")] = None,
             vessel: Annotated[str | None, typer.Option(help="only this vessel")] = None,
             kind: Annotated[str | None, typer.Option(help="grain, ore or other")] = None,
             limit: int = 50, db: DbOpt = None) -> None:
    """List lots, newest first.

    Example: portwatch lot list --status held
    """
    table = Table("lot", "status", "commodity", "hs", "origin", "vessel", "kg", "declaration",
                  "updated")
    try:
        rows = lots.list_lots(open_db(db), status=status, vessel=vessel, kind=kind,
                              limit=limit)
    except ControllerError as exc:
        fail(str(exc))
    for r in rows:
        table.add_row(r["lot_id"], r["status"], r["commodity"], r["hs_code"],
                      r["origin_country"], r["vessel"], str(r["declared_kg"]),
                      r["declaration_no"], _when(r["updated_ms"]))
    console.print(table)


@lot_app.command("show")
def lot_show(lot: LotArg, db: DbOpt = None) -> None:
    """A lot: its declaration, status history, holds and transfer orders.

    Example: portwatch lot show LOT-2026-0042
    """
    try:
        store = open_db(db)
        d = lots.show(store, lot)
        holds = [holds_mod.with_approvals(store, h) for h in d["holds"]]
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"lot {d['lot_id']}: {d['status']}"
                  + (f" (from {d['held_from']})" if d["held_from"] else "")
                  + f"; {d['commodity']} HS {d['hs_code']} from {d['origin_country']} on "
                  f"{d['vessel']}, {d['declared_kg']} kg, declaration {d['declaration_no']}; "
                  f"next: {', '.join(d['next']) or '-'}")
    history = Table("when", "status", "by", "reason", title="history")
    for e in d["history"]:
        history.add_row(_when(e["time_ms"]), e["status"], e["actor"], e["reason"] or "")
    console.print(history)
    if holds:
        held = Table("id", "kind", "reason", "held", "released", "approvals", title="holds")
        for h in holds:
            held.add_row(str(h["id"]), h["kind"], h["reason"], _when(h["held_ms"]),
                         _when(h["released_ms"]), _approvals(h))
        console.print(held)
    if d["orders"]:
        orders = Table("order", "plate", "destination", "status", title="orders")
        for o in d["orders"]:
            orders.add_row(o["order_id"], o["plate"], o["destination"], o["status"])
        console.print(orders)
