"""`portwatch lot declare|list|show|status|hold|approve-release` on a real store: a lot
declared, moved, held under quarantine, approved by two release officers' tokens (the same
one twice and a non-officer refused), shown with its history and holds."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controller import auth, lots
from controller.storage import open_store
from tools.cli import app as cli_app


def test_lot_cli_declare_move_hold_and_four_eyes_release(tmp_path: Path) -> None:
    db_path = tmp_path / "pw.db"
    store = open_store(db_path, create=True)
    ann = auth.create_token(store, name="ann", role="release_officer")
    ben = auth.create_token(store, name="ben", role="release_officer")
    admin = auth.create_token(store, name="root", role="admin")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        r = runner.invoke(cli_app, ["lot", *args, "--db", str(db_path)])
        return r.exit_code, r.output

    code, out = run("declare", "LOT-2026-0042", "--declaration", "CN-DL-2026-118733",
                    "--commodity", "wheat", "--hs", "100199", "--origin", "UA",
                    "--vessel", "MV Star Pisces", "--kg", "52000000")
    assert code == 0 and "lot LOT-2026-0042 declared" in out, out
    code, out = run("declare", "LOT-BAD", "--declaration", "D", "--commodity", "wheat",
                    "--hs", "10", "--origin", "UA", "--vessel", "V", "--kg", "1")
    assert code == 1 and "6-10 digit HS code" in out
    code, out = run("status", "LOT-2026-0042", "stored", "--reason", "skip")
    assert code == 1 and "possible: anchorage_quarantine, unloading" in out
    code, out = run("status", "LOT-2026-0042", "unloading", "--reason", "berth-1")
    assert code == 0 and "is unloading" in out
    code, out = run("hold", "LOT-2026-0042", "--kind", "quarantine", "--reason", "phyto")
    assert code == 0 and "on quarantine hold (hold 1" in out, out
    code, out = run("list", "--status", "held")
    assert code == 0 and "LOT-2026-0042" in out
    code, out = run("approve-release", "1", "--reason", "x", "--token", admin)
    assert code == 1 and "needs a release_officer token" in out
    code, out = run("approve-release", "1", "--reason", "lab ok", "--token", ann)
    assert code == 0 and "1 more approval" in out, out
    code, out = run("approve-release", "1", "--reason", "again", "--token", ann)
    assert code == 1 and "different release officer" in out
    code, out = run("approve-release", "1", "--reason", "cert 551", "--token", ben)
    assert code == 0 and "released" in out, out
    lot = lots.get_lot(store.conn, "LOT-2026-0042")
    assert lot is not None and lot["status"] == "unloading"
    code, out = run("show", "LOT-2026-0042")
    assert code == 0 and "held" in out and "quarantine" in out and "token:ben" in out, out
    code, out = run("show", "LOT-404")
    assert code == 1 and "not declared" in out


def test_lot_cli_help_has_examples() -> None:
    runner = CliRunner()
    for cmd in ("declare", "list", "show", "status", "approve-release", "hold", "release"):
        r = runner.invoke(cli_app, ["lot", cmd, "--help"])
        assert r.exit_code == 0 and "Example: portwatch lot" in r.output, cmd
