"""`portwatch office`: destination customs offices that receive the port's trips.

``add``, ``list`` and ``remove`` work on the controller's store (then regenerate the broker's
files: ``portwatch broker config``); ``listen`` runs at the office: the reference receiver,
which verifies each trip record's signature and acks it.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from controller import office_feed
from controller.errors import ControllerError
from controller.ledger import checkpoint
from controller.office_record import Verified
from controller.storage import now_ms
from controller.storage import trip_records as reads
from tools import settings, tls
from tools.cli_support import DbOpt, SiteOpt, fail, open_db
from tools.office_client import OfficeConfig, OfficeConfigError, OfficeListener

console = Console()
err = Console(stderr=True)

office_app = typer.Typer(help="Destination customs offices: the trip feed they receive and "
                         "ack.", no_args_is_help=True)





@office_app.command("add")
def office_add(
    office_id: Annotated[str, typer.Argument(help="the office's id, also its broker login")],
    destination: Annotated[list[str], typer.Option(
        "--destination", help="a destination zone id whose trips it receives (repeat; '*' "
        "for every one)")],
    out: Annotated[Path, typer.Option(help="the office's config file to write (0600: it "
                                      "holds the office's broker password)")],
    name: Annotated[str, typer.Option(help="the office's name")] = "",
    broker: Annotated[str, typer.Option(help="the broker HOST:PORT the office dials")] =
        "127.0.0.1:8883",
    broker_ca: Annotated[Path | None, typer.Option(
        help="the CA of the broker's certificate [default: the site CA next to the store]")]
        = None,
    no_broker_tls: Annotated[bool, typer.Option(
        "--no-broker-tls", help="the broker is reached in clear (tests only)")] = False,
    db: DbOpt = None, site: SiteOpt = None,
) -> None:
    """Provision an office: its broker login, and a config file to hand to it.

    Example: portwatch office add cn-shenyang --destination dest-shenyang --name "Shenyang
    inland customs" --out shenyang.json
    """
    db_path = db or settings.default_db()
    site_id = site or settings.default_site()
    try:
        host, port = settings.split_hostport(broker, tls.TLS_PORT)
    except ValueError as exc:
        fail(str(exc))
    store = open_db(db_path)
    try:
        origin = reads.origin(store.conn) or checkpoint.origin_for(site_id)
        vkey = checkpoint.log_signer(db_path, origin).verifier.vkey
        ca = None if no_broker_tls else (broker_ca or tls.ca_dir_for(db_path) / tls.CA_CERT)
        if ca is not None and not ca.exists():
            fail(f"no CA certificate at {ca}: run `portwatch broker config` first, or pass "
                  "--broker-ca")
        password = office_feed.add_office(store, office_id=office_id, name=name or office_id,
                                          destinations=destination, actor="cli",
                                          time_ms=now_ms())
    except ControllerError as exc:
        fail(str(exc))
    finally:
        store.close()
    OfficeConfig(office_id, site_id, host, port, password, vkey,
                 None if ca is None else str(ca.resolve())).save(out)
    console.print(f"office {office_id} added; its config (with its password, shown only "
                  f"there) is in {out}.", highlight=False)
    console.print("next: portwatch broker config --out <dir>, reload the broker, and at the "
                  f"office: portwatch office listen --office {office_id} --config {out}",
                  highlight=False, soft_wrap=True)


@office_app.command("list")
def office_list(db: DbOpt = None, as_json: Annotated[bool, typer.Option(
        "--json", help="print JSON")] = False) -> None:
    """Offices with their destinations and trip records sent, acked and pending.

    Example: portwatch office list --db var/portwatch.db
    """
    store = open_db(db)
    try:
        rows = office_feed.office_status(store.conn, now_ms())
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    table = Table("office", "name", "destinations", "sent", "acked", "pending",
                  "oldest pending")
    for r in rows:
        age = r["oldest_pending_age_ms"]
        table.add_row(r["office_id"], r["name"], ", ".join(r["destinations"]), str(r["sent"]),
                      str(r["acked"]), str(r["pending"]),
                      "" if age is None else f"{age / 1000:.0f} s")
    console.print(table)


@office_app.command("remove")
def office_remove(
    office_id: Annotated[str, typer.Argument(help="the office's id")],
    reason: Annotated[str, typer.Option(help="why, kept in the ledger")],
    db: DbOpt = None,
) -> None:
    """Stop sending trips to an office (its records stay; its login goes at the next
    `portwatch broker config`).

    Example: portwatch office remove cn-shenyang --reason "office merged into Dalian"
    """
    store = open_db(db)
    try:
        office_feed.remove_office(store, office_id, actor="cli", reason=reason,
                                  time_ms=now_ms())
    except ControllerError as exc:
        fail(str(exc))
    finally:
        store.close()
    console.print(f"office {office_id} removed. Remove its login: portwatch broker config "
                  "--out <dir>, then reload the broker.", highlight=False)


def _show(record: Verified) -> None:
    r = record.record
    order = r.get("order") or {}
    dep = r.get("departure") or {}
    console.print(f"{time.strftime('%H:%M:%S')} trip [bold]{record.trip_id}[/] v{record.version}"
                  f" #{r.get('office_seq')} {r.get('status')}  {order.get('plate')}  lot "
                  f"{order.get('lot')} -> {order.get('destination')}  net "
                  f"{dep.get('net_kg')} kg  events {r.get('events_total')}  verified",
                  highlight=False)


@office_app.command("listen")
def office_listen(
    office: Annotated[str, typer.Option("--office", help="this office's id")],
    config: Annotated[Path | None, typer.Option(
        help="the office config `office add --out` wrote [default: office-<ID>.json]")] = None,
    count: Annotated[int, typer.Option(min=0, help="stop after this many verified records "
                                       "(0: run until Ctrl-C)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print each verified record as one "
                                          "JSON line")] = False,
) -> None:
    """Receive this office's trip records, verify the log key's signature, print and ack them.

    A record whose signature does not verify is reported and not acked.

    Example: portwatch office listen --office cn-shenyang --config shenyang.json
    """
    try:
        cfg = OfficeConfig.load(config or Path(f"office-{office}.json"))
    except OfficeConfigError as exc:
        fail(str(exc))
    if cfg.office_id != office:
        fail(f"the config is office {cfg.office_id!r}'s, not {office!r}")
    done = threading.Event()
    seen = [0]

    def on_record(record: Verified) -> None:
        if as_json:
            typer.echo(json.dumps(record.record, ensure_ascii=False, sort_keys=True))
        else:
            _show(record)
        seen[0] += 1
        if count and seen[0] >= count:
            done.set()

    listener = OfficeListener(cfg, on_record, lambda why: err.print(
        f"[red]refused (not acked):[/] {why}", highlight=False))
    listener.start()
    err.print(f"office {office} listening on {cfg.broker_host}:{cfg.broker_port}; log key "
              f"{cfg.log_key}", highlight=False)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
