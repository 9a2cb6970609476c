"""`portwatch sample`: the lab analyzers' samples as the controller stored them."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from controller import samples
from controller.errors import ControllerError
from tools.cli_support import DbOpt, fail, open_db

console = Console()
sample_app = typer.Typer(help="Lab samples: moisture, protein, impurity, findings, their lot.",
                         no_args_is_help=True)


def _when(ms: int | None) -> str:
    return "" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def _pct(pm: int) -> str:
    return f"{pm // 10}.{pm % 10}"


@sample_app.command("list")
def sample_list(lot: Annotated[str | None, typer.Option(help="only this lot's samples")] = None,
                device: Annotated[str | None, typer.Option(help="only this analyzer's")] = None,
                limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
                db: DbOpt = None) -> None:
    """List lab samples, newest first by sampling time (UTC): the lot each was tied to
    ('-': none was unloading), moisture, protein and impurity in %, test weight in kg/hl,
    and any quarantine finding. A '!' after the calibration id: the analyzer's calibration
    did not cover the sampling time.

    Example: portwatch sample list --lot LOT-2026-0042
    """
    try:
        store = open_db(db)
        rows = samples.list_samples(store.conn, lot=lot, device_id=device, limit=limit)
    except ControllerError as exc:
        fail(str(exc))
    table = Table("sampled (UTC)", "device", "sample", "lot", "moisture %", "protein %",
                  "impurity %", "kg/hl", "calibration", "outlier", "findings")
    for r in rows:
        table.add_row(_when(r["sampled_ts"]), r["device_id"], r["sample_id"],
                      r["lot_id"] or "-", f"{_pct(r['moisture_pm'])} {r['basis']}",
                      _pct(r["protein_pm"]), _pct(r["impurity_pm"]),
                      _pct(r["test_weight_g_per_l"]),
                      r["calibration_id"] + ("" if r["calibration_valid"] is not False else " !"),
                      "yes" if r["outlier"] else "",
                      "; ".join(f"{f[0]} x{f[1]} in {f[2]} g" for f in r["findings"]))
    console.print(table)
