"""`portwatch ledger audit`: the served tables rebuilt from the ledger and compared."""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import audit
from controller.errors import StoreError
from controller.storage import read_snapshot
from tools.ledger_cli import DbOpt, _db, ledger_app

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:79] + "…"


@ledger_app.command("audit")
def ledger_audit(
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    chunk: Annotated[int, typer.Option(min=100, max=1_000_000,
                                       help="events replayed per step (memory bound)")]
    = audit.CHUNK,
) -> None:
    """Rebuild every served row from the ledger and report each one edited, deleted or
    added outside it, by table and key.

    Trusts nothing in the store's tables: each custody event's entry (the device's exact
    bytes) is replayed through the same projections the ingest used, admins' lost-range
    decisions are added, and each device's watermark is checked. Exit 0: every row
    matches; 1: mismatches (each listed); 2: the store could not be read.

    Example: portwatch ledger audit --db var/site/portwatch.db
    """
    path = _db(db)
    try:
        with read_snapshot(path) as conn:
            report = audit.audit_store(conn, chunk=chunk)
    except (StoreError, sqlite3.Error) as exc:
        err.print(f"[red]error:[/] cannot audit {path}: {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=1, ensure_ascii=False))
    else:
        _print(report, str(path))
    raise typer.Exit(0 if report.clean else 1)


def report_json(report: audit.AuditReport) -> dict[str, Any]:
    """The report as the --json output prints it."""
    return {"clean": report.clean, "ledger_size": report.ledger_size,
            "events_replayed": report.entries, "devices": report.devices,
            "unchecked_flags": report.unchecked_flags, "seconds": round(report.seconds, 3),
            "tables": {t: {"checked": c.checked, "edited": c.edited, "deleted": c.deleted,
                           "added": c.added} for t, c in sorted(report.tables.items())},
            "mismatches": [m.as_json() for m in report.mismatches]}


def _print(report: audit.AuditReport, path: str) -> None:
    summary = Table(title=f"audit of {path}: {report.entries} custody events replayed from "
                    f"{report.ledger_size} ledger entries, {report.devices} devices, "
                    f"{report.seconds:.2f} s")
    for col in ("table", "rows checked", "edited", "deleted", "added"):
        summary.add_column(col, justify="left" if col == "table" else "right")
    for name, c in sorted(report.tables.items()):
        summary.add_row(name, str(c.checked), str(c.edited), str(c.deleted), str(c.added))
    out.print(summary)
    if report.unchecked_flags:
        out.print(f"{report.unchecked_flags} weighings were stored before the controller "
                  "recorded their limits: their plausibility flags are not checked")
    for m in report.mismatches:
        line = f"MISMATCH {m.table} {m.key}: {m.problem}"
        for c in m.as_json().get("columns", []):
            line += (f"; {c['column']} stored {_short(c['stored'])}, "
                     f"expected {_short(c['expected'])}")
        if m.detail:
            line += f" ({m.detail})"
        out.print(line)
    if report.clean:
        out.print("OK: every served row is what the ledger's entries make")
    else:
        out.print(f"FAILED: {len(report.mismatches)} rows differ from what the ledger's "
                  "entries make")
