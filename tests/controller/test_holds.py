"""Lot holds: storage, the ledger decisions, the API's refusals and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller import auth
from controller import holds as holds_mod
from controller.api.app import create_app
from controller.errors import Conflict, InvalidInput, NotFound
from controller.ledger import entries
from controller.storage import Store, ledger_log
from controller.storage.holds import active_hold
from ctl_helpers import SITE
from tools.cli import app as cli_app


def _decisions(db: Store, kind: str) -> list[dict[str, object]]:
    out = []
    for _, data, _ in ledger_log.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(dict(e.body))
    return out


def test_hold_then_release_active_hold_and_ledger(db: Store) -> None:
    h = holds_mod.hold(db, "LOT-1", reason="inspection", actor="cli:alice", at_ms=1000)
    assert active_hold(db.conn, "LOT-1") == h
    assert active_hold(db.conn, "LOT-2") is None
    r = holds_mod.release(db, "LOT-1", reason="passed", actor="cli:bob", at_ms=2000)
    assert r["released_ms"] == 2000 and r["released_by"] == "cli:bob"
    assert active_hold(db.conn, "LOT-1") is None
    assert [d["lot"] for d in _decisions(db, "hold")] == ["LOT-1"]
    rel = _decisions(db, "release")
    assert rel[0]["held_by"] == "cli:alice" and rel[0]["reason"] == "passed"
    # held again after a release: a new hold
    again = holds_mod.hold(db, "LOT-1", reason="second look", actor="cli:alice")
    assert again["id"] != h["id"]
    assert len(holds_mod.list_holds(db, active=None)) == 2


def test_hold_twice_is_conflict_and_release_unheld_not_found(db: Store) -> None:
    holds_mod.hold(db, "LOT-1", reason="x", actor="a")
    with pytest.raises(Conflict, match="already on hold"):
        holds_mod.hold(db, "LOT-1", reason="y", actor="b")
    with pytest.raises(NotFound, match="not on hold"):
        holds_mod.release(db, "LOT-9", reason="y", actor="b")
    assert len(_decisions(db, "hold")) == 1  # the refusal wrote nothing


@pytest.mark.parametrize("lot", ["", "a b", "-x", "x" * 65])
def test_hold_bad_lot_is_invalid(db: Store, lot: str) -> None:
    with pytest.raises(InvalidInput):
        holds_mod.hold(db, lot, reason="x", actor="a")


def test_hold_api_roles_and_listing(db_path: Path, db: Store) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    tok = {r: {"Authorization": "Bearer " + auth.create_token(db, name=r, role=r)}
           for r in auth.ROLES}
    r = client.post("/api/v1/lots/LOT-7/hold", headers=tok["operator"],
                    json={"reason": "fumigation"})
    assert r.status_code == 201 and r.json()["active"] is True
    assert r.json()["actor"] == "token:operator (operator)"
    assert client.post("/api/v1/lots/LOT-7/hold", headers=tok["admin"],
                       json={"reason": "again"}).status_code == 409
    assert client.post("/api/v1/lots/LOT-7/release", headers=tok["operator"],
                       json={"reason": "done"}).status_code == 403
    listed = client.get("/api/v1/holds", headers=tok["auditor"]).json()
    assert [h["lot"] for h in listed] == ["LOT-7"]
    r = client.post("/api/v1/lots/LOT-7/release", headers=tok["admin"], json={"reason": "ok"})
    assert r.status_code == 200 and r.json()["active"] is False
    assert client.get("/api/v1/holds", headers=tok["auditor"]).json() == []
    assert len(client.get("/api/v1/holds?all=true", headers=tok["auditor"]).json()) == 1


def test_lot_cli_hold_release_holds(db_path: Path, db: Store) -> None:
    runner = CliRunner()
    r = runner.invoke(cli_app, ["lot", "hold", "LOT-3", "--reason", "seal broken",
                                "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli_app, ["lot", "holds", "--db", str(db_path)])
    assert "LOT-3" in r.output and "seal broken" in r.output
    r = runner.invoke(cli_app, ["lot", "hold", "LOT-3", "--reason", "x", "--db", str(db_path)])
    assert r.exit_code == 1 and "already on hold" in r.output
    r = runner.invoke(cli_app, ["lot", "release", "LOT-3", "--reason", "resealed",
                                "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert active_hold(db.conn, "LOT-3") is None
