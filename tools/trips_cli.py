"""`portwatch order` and `portwatch trip`: transfer orders and their trips, on the store
directly. The same operations as /api/v1/orders and /api/v1/trips (controller/orders.py,
controller/trips.py); each change is a ledger decision with ``cli:<os user>`` as actor.
"""

from __future__ import annotations

import getpass
import json
import time
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import orders as orders_mod
from controller.errors import ControllerError
from controller.storage import orders as order_rows
from controller.storage import positions
from controller.storage import trips as trip_rows
from tools.cli_support import DbOpt, fail, open_db

console = Console()
err = Console(stderr=True)

order_app = typer.Typer(help="Transfer orders: create, list, show, cancel.",
                        no_args_is_help=True)
trip_app = typer.Typer(help="Trips of transfer orders: list, show, track.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]




def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z" if ms else "-"


def parse_time(value: str, name: str) -> int:
    """ms since the epoch, or ISO-8601 with a zone, as ms; exits with the reason if not."""
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--{name} {value!r} is neither ms since the epoch nor ISO-8601 "
              "(2026-12-01T08:00:00Z)")
    if dt.tzinfo is None:
        fail(f"--{name} {value!r} has no zone: add Z or +08:00")
    return int(dt.timestamp() * 1000)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, ensure_ascii=False))


@order_app.command("create")
def order_create(
    lot: Annotated[str, typer.Option(help="the lot the truck carries")],
    plate: Annotated[str, typer.Option(help="the truck's plate")],
    tracker: Annotated[str, typer.Option(help="the GPS tracker on the truck (a gps device)")],
    destination: Annotated[str, typer.Option(help="a destination zone of the site")],
    corridor: Annotated[str, typer.Option(help="the site's corridor to the destination")],
    window_start: Annotated[str, typer.Option(help="leave from: ISO-8601 with a zone, or ms")],
    window_end: Annotated[str, typer.Option(help="leave by: ISO-8601 with a zone, or ms")],
    expected_net_kg: Annotated[int, typer.Option(help="expected net weight, kg")],
    db: DbOpt = None,
) -> None:
    """Create a transfer order, checked against the site (PORTWATCH_SITE) and the registry.

    Example: portwatch order create --lot LOT-7 --plate 辽B12345 --tracker gps-1
    --destination dest-feed-mill --corridor c-feed-mill --window-start 2026-12-01T08:00:00Z
    --window-end 2026-12-01T12:00:00Z --expected-net-kg 30000
    """
    new = orders_mod.NewOrder(
        lot=lot, plate=plate, tracker_id=tracker, destination=destination, corridor=corridor,
        window_start_ms=parse_time(window_start, "window-start"),
        window_end_ms=parse_time(window_end, "window-end"), expected_net_kg=expected_net_kg)
    try:
        row = orders_mod.create(open_db(db), new, actor=f"cli:{getpass.getuser()}")
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"order [bold]{row['order_id']}[/] created for {row['plate']} "
                  f"(lot {row['lot']}) to {row['destination']}", highlight=False)


@order_app.command("list")
def order_list(
    status: Annotated[str | None, typer.Option(
        help="open, departed, arrived or cancelled")] = None,
    plate: Annotated[str | None, typer.Option(help="only this plate")] = None,
    limit: int = 50, as_json: JsonOpt = False, db: DbOpt = None,
) -> None:
    """List transfer orders, newest first.

    Example: portwatch order list --status open
    """
    rows = order_rows.list_orders(open_db(db).conn, status=status, plate=plate, limit=limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("order", "status", "lot", "plate", "tracker", "destination", "window",
                  "net kg")
    for r in rows:
        table.add_row(r["order_id"], r["status"], r["lot"], r["plate"], r["tracker_id"],
                      r["destination"], f"{_when(r['window_start_ms'])} - "
                      f"{_when(r['window_end_ms'])}", str(r["expected_net_kg"]))
    console.print(table)


@order_app.command("show")
def order_show(order_id: str, db: DbOpt = None) -> None:
    """Show one order as JSON.

    Example: portwatch order show o-3f2a9c01b7d4
    """
    row = order_rows.get_order(open_db(db).conn, order_id)
    if row is None:
        fail(f"no transfer order {order_id!r}: list them with `portwatch order list`")
    _print_json(row)


@order_app.command("cancel")
def order_cancel(order_id: str,
                 reason: Annotated[str, typer.Option("--reason", "-m", help="why")],
                 db: DbOpt = None) -> None:
    """Cancel an open or departed order (its trip in transit ends too).

    Example: portwatch order cancel o-3f2a9c01b7d4 -m "truck broke down"
    """
    try:
        row = orders_mod.cancel(open_db(db), order_id, reason=reason,
                                actor=f"cli:{getpass.getuser()}")
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"order {row['order_id']} cancelled", highlight=False)


@trip_app.command("list")
def trip_list(
    status: Annotated[str | None, typer.Option(help="in_transit, arrived or cancelled")] = None,
    tracker: Annotated[str | None, typer.Option(help="only this tracker")] = None,
    limit: int = 50, as_json: JsonOpt = False, db: DbOpt = None,
) -> None:
    """List trips, latest departure first.

    Example: portwatch trip list --status in_transit
    """
    rows = trip_rows.list_trips(open_db(db).conn, status=status, tracker_id=tracker, limit=limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("trip", "status", "plate", "tracker", "destination", "departed", "arrived")
    for r in rows:
        table.add_row(r["trip_id"], r["status"], r["plate"] or "-", r["tracker_id"],
                      r["destination"] or "-", _when(r["departed_ms"]), _when(r["arrived_ts"]))
    console.print(table)


@trip_app.command("show")
def trip_show(trip_id: str, db: DbOpt = None) -> None:
    """Show one trip with its events and alerts, as JSON.

    Example: portwatch trip show o-3f2a9c01b7d4
    """
    conn = open_db(db).conn
    row = trip_rows.get_trip(conn, trip_id)
    if row is None:
        fail(f"no trip {trip_id!r}: list them with `portwatch trip list`")
    events = [{**e, "detail": json.loads(e.pop("detail_json") or "{}")}
              for e in trip_rows.events(conn, trip_id)]
    alerts = [{k: a[k] for k in ("id", "code", "severity", "raised_ts", "cleared_ts")}
              for a in trip_rows.trip_alerts(conn, trip_id)]
    _print_json({**row, "events": events, "alerts": alerts})


@trip_app.command("track")
def trip_track(trip_id: str, as_json: JsonOpt = False, db: DbOpt = None) -> None:
    """Print a trip's fixes from departure to arrival (now, while in transit), by device time.

    Example: portwatch trip track o-3f2a9c01b7d4 --json > track.json
    """
    conn = open_db(db).conn
    row = trip_rows.get_trip(conn, trip_id)
    if row is None:
        fail(f"no trip {trip_id!r}: list them with `portwatch trip list`")
    until = row["arrived_ts"] if row["status"] == "arrived" else (
        row["closed_ms"] if row["status"] == "cancelled" else None)
    fixes = positions.track(conn, row["tracker_id"], row["departed_ms"], until)
    if as_json:
        _print_json(fixes)
        return
    table = Table("device time", "lat", "lon", "km/h", "sats")
    for f in fixes:
        table.add_row(_when(f["ts_ms"]), f"{f['lat_e6'] / 1e6:.6f}", f"{f['lon_e6'] / 1e6:.6f}",
                      f"{(f['speed_dkmh'] or 0) / 10:.1f}", str(f["sats"]))
    console.print(table)
