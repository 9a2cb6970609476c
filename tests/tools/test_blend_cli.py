"""`portwatch blend create|show`, `portwatch lot recall` and `lot status --before-test` on
a real store: two declared ore lots blended, a bad input refused with the form to use, the
recall list as a table and as JSON naming the trucks of the lot and of its blend, an ore
lot released before its test."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from controller import lots
from controller.storage import open_store
from controller.storage import trips as trip_rows
from tools.cli import app as cli_app

T0 = 1796083200000  # 2026-12-01T00:00:00Z


def test_blend_cli_create_show_and_lot_recall(tmp_path: Path) -> None:
    db_path = tmp_path / "pw.db"
    store = open_store(db_path, create=True)
    for lot, country in (("ORE-A", "AU"), ("ORE-B", "BR")):
        lots.declare(store, {"lot_id": lot, "declaration_no": f"D-{lot}",
                             "commodity": "iron ore", "hs_code": "260111",
                             "origin_country": country, "vessel": "MV Iron",
                             "declared_kg": 40_000_000, "kind": "ore"}, actor="t", at_ms=T0)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        r = runner.invoke(cli_app, [*args, "--db", str(db_path)])
        return r.exit_code, r.output

    code, out = run("blend", "create", "BL-1", "--input", "ORE-A=30000",
                    "--input", "ORE-B=10000", "--reason", "grade 62")
    assert code == 0 and "blend BL-1: 40000 kg of iron ore" in out, out
    assert "75.00%" in out and "25.00%" in out and "(AU, BR)" in out
    code, out = run("blend", "create", "BL-2", "--input", "ORE-A:5", "--input", "ORE-B=5",
                    "--reason", "x")
    assert code != 0 and "give LOT=KG" in out
    code, out = run("blend", "create", "BL-1", "--input", "ORE-A=1", "--input", "ORE-B=1",
                    "--reason", "again")
    assert code == 1 and "exists already" in out
    code, out = run("blend", "show", "BL-1", "--json")
    assert code == 0 and json.loads(out)["inputs"][0] == {"lot": "ORE-A", "kg": 30000,
                                                          "fraction": 0.75}
    code, out = run("blend", "show", "ORE-A")
    assert code == 1 and "is no blend" in out

    with store.transaction() as conn:
        for trip_id, lot, plate in (("o-1", "ORE-A", "AB1001"), ("o-2", "BL-1", "AB2002"),
                                    ("o-3", "ORE-B", "AB3003")):
            trip_rows.put_trip(conn, {
                "trip_id": trip_id, "tracker_id": "gps-1", "plate": plate, "lot": lot,
                "destination": "steel-mill", "corridor": "c1", "gate_device": "wb-out",
                "weighing_seq": 1, "net_kg": 30_000, "departed_ms": T0 + 60_000,
                "status": "in_transit", "arrived_ts": None, "closed_ms": None,
                "end_reason": None})
    code, out = run("lot", "recall", "ORE-A")
    assert code == 0 and "AB1001" in out and "AB2002" in out and "AB3003" not in out, out
    assert "BL-1 (75%)" in out and "2 trips (60000 kg)" in out
    code, out = run("lot", "recall", "ORE-A", "--json")
    listed = json.loads(out)
    assert [(t["plate"], t["via"], t["fraction"]) for t in listed["trips"]] == [
        ("AB1001", "ORE-A", 1.0), ("AB2002", "BL-1", 0.75)]
    code, out = run("lot", "recall", "NO-SUCH")
    assert code == 1 and "no lot 'NO-SUCH'" in out

    # release before test: only to released (and only an ore lot)
    for status in ("unloading", "stored"):
        assert run("lot", "status", "ORE-B", status, "--reason", "x")[0] == 0
    code, out = run("lot", "status", "ORE-B", "departed", "--reason", "x", "--before-test")
    assert code == 1 and "released_before_test is for an ore lot going to released" in out
    code, out = run("lot", "status", "ORE-B", "released", "--reason", "guarantee",
                    "--before-test")
    assert code == 0 and "is released" in out, out
    row = lots.get_lot(store.conn, "ORE-B")
    assert row is not None and row["released_before_test"] == 1
