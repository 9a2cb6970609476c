"""`portwatch trace back|forward` and `portwatch lot epcis|report|evidence`: where a lot's
cargo came from and went, its EPCIS 2.0 history, a readable report and an evidence pack
(controller/trace.py, controller/epcis.py, controller/trace_report.py,
controller/ledger/evidence.py). Importing this module registers the lot commands on
tools/lot_cli.py's ``lot_app``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from controller import epcis, trace, trace_report
from controller.errors import ControllerError
from controller.ledger import checkpoint
from controller.ledger import evidence as evidence_mod
from controller.storage import ledger_log, now_ms
from tools import settings
from tools.cli_support import DbOpt, fail, open_db
from tools.lot_cli import lot_app

err = Console(stderr=True, soft_wrap=True)
trace_app = typer.Typer(help="Trace cargo back to its lot and vessel, or a lot forward to "
                        "every trip, rail car and blend; each step with its ledger proofs.",
                        no_args_is_help=True)
OutOpt = Annotated[Path, typer.Option("--out", help="file to write")]


def _print(doc: dict[str, Any]) -> None:
    typer.echo(json.dumps(doc, indent=1, ensure_ascii=False))


def _summary_back(got: dict[str, Any]) -> str:
    lot = got["lot"]
    lines = [f"{got['from']['type']} {got['from']['id']} -> lot {lot.get('id')}"]
    if lot.get("vessel"):
        lines.append(f"  vessel {lot['vessel']}, declaration {lot.get('declaration_no')}")
    for i in lot.get("blend_inputs", []):
        lines.append(f"  blend input {i['lot']['id']}: {i['kg']} kg ({i['fraction']:.1%})")
    if lot.get("missing"):
        lines.append(f"  note: {lot['missing']}")
    return "\n".join(lines)


@trace_app.command("back")
def trace_back(
    trip: Annotated[str | None, typer.Option(help="a trip id")] = None,
    car: Annotated[str | None, typer.Option(help="a rail car id")] = None,
    weighing: Annotated[str | None, typer.Option(help="DEVICE:SEQ of a weighing")] = None,
    sample: Annotated[str | None, typer.Option(help="DEVICE:SEQ of a lab sample")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the whole trace with proofs")] =
        False,
    db: DbOpt = None,
) -> None:
    """Trace a trip, rail car, weighing or lab sample back to its lot and vessel.

    Names the lot's declaration and, through blends, every input lot with its share.

    Example: portwatch trace back --weighing wb-out:17 --json > trace.json
    """
    store = open_db(db)
    try:
        got = trace.backward(store.conn, trip=trip, car=car, weighing=weighing, sample=sample)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        _print(got)
    else:
        typer.echo(_summary_back(got))


@trace_app.command("forward")
def trace_forward(
    lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
    as_json: Annotated[bool, typer.Option("--json", help="the whole trace with proofs")] =
        False,
    db: DbOpt = None,
) -> None:
    """Trace a lot forward to every trip, rail car and blend it went into.

    Each trip with its destination, kg and departure time.

    Example: portwatch trace forward LOT-2026-0042
    """
    store = open_db(db)
    try:
        got = trace.forward(store.conn, lot)
    except ControllerError as exc:
        fail(str(exc))
    if as_json:
        _print(got)
        return
    for t in got["lot"]["trips"]:
        typer.echo(f"trip {t['id']}  {t.get('plate')}  {t.get('net_kg')} kg  -> "
                   f"{t.get('destination')}  departed_ms {t.get('departed_ms')}  "
                   f"{t.get('status')}")
    for c in got["lot"]["cars"]:
        typer.echo(f"car {c.get('id')}  {c.get('net_kg')} kg")
    for b in got["lot"]["blended_into"]:
        typer.echo(f"blend {b['lot']['id']}  {b['kg']} kg ({b['fraction']:.1%})")
    typer.echo(f"totals: {json.dumps(got['totals'], ensure_ascii=False)}")


@lot_app.command("epcis")
def lot_epcis(lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
              db: DbOpt = None) -> None:
    """Print a lot's history as an EPCIS 2.0 JSON-LD document.

    Each eventID is the event's CBV 2.0 event hash.

    Example: portwatch lot epcis LOT-2026-0042 > lot.jsonld
    """
    store = open_db(db)
    try:
        typer.echo(epcis.dumps(epcis.document(store.conn, lot, now_ms=now_ms())))
    except ControllerError as exc:
        fail(str(exc))


@lot_app.command("report")
def lot_report(lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
               out: OutOpt, db: DbOpt = None) -> None:
    """Write a lot's trace report as a static HTML page.

    Its timeline and a diagram of where its cargo went; no scripts, no CDN.

    Example: portwatch lot report LOT-2026-0042 --out report.html
    """
    store = open_db(db)
    try:
        page = trace_report.render(store.conn, lot, now_ms=now_ms())
    except ControllerError as exc:
        fail(str(exc))
    out.write_text(page, encoding="utf-8")
    err.print(f"wrote {out}", highlight=False)


@lot_app.command("evidence")
def lot_evidence(lot: Annotated[str, typer.Argument(help="lot id, e.g. LOT-2026-0042")],
                 out: OutOpt, db: DbOpt = None) -> None:
    """Write a lot's evidence pack, to check offline with `portwatch ledger verify`.

    Its EPCIS document with the ledger entries, inclusion proofs, signed checkpoint and
    device keys behind each event.

    Example: portwatch lot evidence LOT-2026-0042 --out pack.json
    """
    path = db or settings.default_db()
    store = open_db(path)
    origin = ledger_log.get_meta(store.conn, "origin")
    if origin is None:
        fail("this ledger has no origin yet: sign a checkpoint first (portwatch ledger "
             "checkpoint)")
    try:
        vkey = checkpoint.log_signer(path, origin).verifier.vkey
        pack = evidence_mod.build(store.conn, lot, log_key=vkey, now_ms=now_ms())
    except ControllerError as exc:
        fail(str(exc))
    out.write_text(json.dumps(pack, indent=1, ensure_ascii=False), encoding="utf-8")
    err.print(f"wrote {out}: {len(pack['epcis']['epcisBody']['eventList'])} events, "
              f"{len(pack['proofs'])} ledger entries, log key {vkey}", highlight=False)
