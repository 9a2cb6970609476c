"""`portwatch calibration add|list` and `portwatch lot balance|draft-survey` on a real store:
a certificate recorded and listed as due, a bad class refused with what to give, a draft
survey beyond the declaration shown as a discrepancy, the balance as JSON."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from typer.testing import CliRunner

from controller import lots, registry
from controller.storage import open_store
from tools.cli import app as cli_app


def test_calibration_cli_add_list_and_lot_balance(tmp_path: Path) -> None:
    db_path = tmp_path / "pw.db"
    store = open_store(db_path, create=True)
    registry.provision(store, device_id="wb-out", site="s", kind="weighbridge", driver={})
    lots.declare(store, {"lot_id": "LOT-1", "declaration_no": "D-1", "commodity": "wheat",
                         "hs_code": "100199", "origin_country": "UA", "vessel": "MV C",
                         "declared_kg": 50_000, "kind": "grain"}, actor="t")
    for status in ("anchorage_quarantine", "unloading", "stored"):  # unloading is over
        lots.change_status(store, "LOT-1", status, reason="t", actor="t")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        r = runner.invoke(cli_app, [*args, "--db", str(db_path)], env={"COLUMNS": "200"})
        return r.exit_code, r.output

    today = datetime.datetime.now(datetime.UTC).date()
    soon = (today + datetime.timedelta(days=10)).isoformat()
    code, out = run("calibration", "add", "wb-out", "--certificate", "LN-1", "--class", "III",
                    "--e-kg", "20", "--issued", today.isoformat(), "--expires", soon,
                    "--issuer", "Liaoning metrology")
    assert code == 0 and "certificate LN-1 class III" in out, out
    code, out = run("calibration", "add", "wb-out", "--certificate", "LN-2", "--class", "V",
                    "--issued", today.isoformat(), "--expires", soon, "--issuer", "x")
    assert code != 0 and "III for a truck scale" in out, out
    code, out = run("calibration", "list", "--due-within-days", "30")
    assert code == 0 and "LN-1" in out
    code, out = run("calibration", "list", "--due-within-days", "5")
    assert code == 0 and "LN-1" not in out
    code, out = run("lot", "draft-survey", "LOT-1", "--kg", "51000", "--surveyor", "SGS")
    assert code == 0 and "unloaded_vs_declared" in out, out
    code, out = run("lot", "balance", "LOT-1", "--json")
    assert code == 0
    balance = json.loads(out)
    assert balance["unloaded"]["source"] == "draft_survey"
    assert [d["code"] for d in balance["discrepancies"]] == ["unloaded_vs_declared"]
    code, out = run("lot", "balance", "LOT-9")
    assert code != 0 and "not declared" in out
