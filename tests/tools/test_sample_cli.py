"""`portwatch sample list` over a real store whose samples came through the real ingest."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controller import lots, registry
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.storage import open_store
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed
from tools.cli import app

T0 = 1796083200000  # 2026-12-01T00:00:00Z


def _body(sid: str, ts: int, findings: list[list[object]]) -> dict[str, object]:
    return {"sample_id": sid, "sampled_ts": ts, "moisture_pm": 131, "basis": "wet",
            "protein_pm": 352, "impurity_pm": 9, "test_weight_g_per_l": 724,
            "calibration_id": "CAL-1", "outlier": False, "findings": findings}


def test_sample_list_shows_lot_figures_and_findings(tmp_path: Path) -> None:
    db_path = tmp_path / "pw.db"
    with open_store(db_path, create=True) as db:
        lab = registry.provision(db, device_id="lab-1", site=SITE, kind="lab")
        lots.declare(db, {"lot_id": "LOT-C-1", "declaration_no": "D-1",
                          "commodity": "soybeans", "hs_code": "120190",
                          "origin_country": "BR", "vessel": "MV C", "declared_kg": 1000,
                          "kind": "grain"}, actor="test", at_ms=T0)
        lots.change_status(db, "LOT-C-1", "unloading", reason="berth-1", actor="test",
                           at_ms=T0 + 1000)
        msgs = [signed(lab, seq=1, kind="sample", body=_body("S-1", T0 - 60_000, [])),
                signed(lab, seq=2, kind="sample",
                       body=_body("S-2", T0 + 60_000, [["Avena sterilis", 2, 1000]]))]
        commit_batch(db.conn, [check_message(m, site=SITE, keys=registry.secrets_by_device(db))
                               for m in msgs], supervise=Runner())
    r = CliRunner().invoke(app, ["sample", "list", "--db", str(db_path)], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "S-" in ln]
    assert len(lines) == 2 and "S-2" in lines[0] and "S-1" in lines[1]
    assert "LOT-C-1" in lines[0] and "Avena sterilis x2 in 1000 g" in lines[0]
    # no certificate of the analyzer on file: not judged, no "!"
    assert "13.1 wet" in lines[0] and "72.4" in lines[0] and "CAL-1 !" not in lines[0]
    assert " - " in lines[1]  # before the lot unloaded: no lot
    only = CliRunner().invoke(app, ["sample", "list", "--lot", "LOT-C-1", "--db",
                                    str(db_path)], terminal_width=200)
    assert "S-2" in only.output and "S-1" not in only.output


def test_sample_list_without_a_store_says_what_to_run(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["sample", "list", "--db", str(tmp_path / "none.db")])
    assert r.exit_code != 0 and "error" in r.output.lower()
