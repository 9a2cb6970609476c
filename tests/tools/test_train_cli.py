"""`portwatch train` on a real store: manifest, list, show, release refused while a lot on
the train is held, then released; bad car specs refused with a hint."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from controller import holds
from controller.storage import open_store
from tools.cli import app

runner = CliRunner()


def _db(tmp_path: Path) -> Path:
    db = tmp_path / "pw.db"
    open_store(db, create=True).close()
    return db


def test_train_cli_manifest_show_release(tmp_path: Path) -> None:
    db = _db(tmp_path)
    base = ["--db", str(db)]
    r = runner.invoke(app, ["train", "manifest", "T-1", "--car", "dlcx:100001:LOT-A",
                            "--car", "DLCX:100002:LOT-B:dest-feed-mill:80000", *base])
    assert r.exit_code == 0, r.output
    assert "2 cars" in r.output
    r = runner.invoke(app, ["train", "list", "--status", "open", *base])
    assert r.exit_code == 0 and "T-1" in r.output
    with open_store(db) as store:
        holds.hold(store, "LOT-B", reason="inspection", actor="officer")
    r = runner.invoke(app, ["train", "release", "T-1", *base])
    assert r.exit_code == 1 and "LOT-B" in r.output
    r = runner.invoke(app, ["train", "show", "T-1", *base])
    assert r.exit_code == 0 and "held lots: LOT-B" in r.output and "DLCX 100002" in r.output
    with open_store(db) as store:
        holds.release(store, "LOT-B", reason="passed", actor="officer")
    r = runner.invoke(app, ["train", "release", "T-1", "-m", "dispatched", *base])
    assert r.exit_code == 0 and "released" in r.output


def test_train_cli_bad_car_refused(tmp_path: Path) -> None:
    db = _db(tmp_path)
    r = runner.invoke(app, ["train", "manifest", "T-2", "--car", "DLCX", "--db", str(db)])
    assert r.exit_code == 1 and "INITIAL:NUMBER" in r.output
    r = runner.invoke(app, ["train", "manifest", "T-2", "--db", str(db)])
    assert r.exit_code == 1 and "cars" in r.output
    r = runner.invoke(app, ["train", "show", "T-404", "--db", str(db)])
    assert r.exit_code == 1 and "no train" in r.output
