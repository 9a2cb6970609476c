"""The trace's outputs over a scripted store: the CLI (trace back/forward, lot epcis,
report, evidence), the evidence pack verified offline by `portwatch ledger verify` (and
failing on one changed byte), the HTML report, and the API routes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.etree import ElementTree

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller import auth, epcis
from controller.api.app import create_app
from controller.ledger import evidence
from controller.storage import Store
from ctl_helpers import SITE
from tools.cli import app as cli_app

from .trace_store import scripted

runner = CliRunner()


def _cli(db_path: Path, *args: str) -> tuple[int, str, str]:
    r = runner.invoke(cli_app, [*args, "--db", str(db_path)])
    return r.exit_code, r.stdout, r.stderr


def test_trace_cli_back_and_forward_name_lot_and_trips(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    code, out, _ = _cli(db_path, "trace", "back", "--weighing", "wb-out:1")
    assert code == 0 and "-> lot LOT-A" in out
    code, out, _ = _cli(db_path, "trace", "back", "--trip", story["trips"][1], "--json")
    assert code == 0 and json.loads(out)["lot"]["id"] == "LOT-A"
    code, out, _ = _cli(db_path, "trace", "forward", "LOT-A")
    assert code == 0 and all(t in out for t in story["trips"]) and "30120 kg" in out
    code, _, err = _cli(db_path, "trace", "forward", "LOT-NONE")
    assert code == 1 and "not recorded" in err


def test_trace_evidence_pack_verifies_offline_and_fails_on_changed_byte(
        db: Store, db_path: Path, tmp_path: Path) -> None:
    scripted(db, db_path)
    pack = tmp_path / "pack.json"
    code, _, err = _cli(db_path, "lot", "evidence", "LOT-A", "--out", str(pack))
    assert code == 0, err
    doc = json.loads(pack.read_text())
    assert doc["format"] == evidence.FORMAT and len(doc["proofs"]) >= 5
    # offline: a fresh runner with no --db: the pack alone
    r = runner.invoke(cli_app, ["ledger", "verify", str(pack), "--log-key", doc["log_key"]])
    assert r.exit_code == 0, r.stderr
    assert "OK" in r.stdout and "EPCIS events" in r.stdout
    # both weighings checked against wb-out's key, proved by its device_key decision
    assert "2 custody events checked against device keys" in r.stdout
    kinds = [p["view"].get("decision") for p in doc["proofs"]]
    assert "device_key" in kinds
    text = pack.read_text()
    # one changed byte in a weighing's kg in the EPCIS part: its eventID no longer matches
    changed = text.replace('"quantity": 30120.0', '"quantity": 30121.0', 1)
    assert changed != text
    bad = tmp_path / "bad.json"
    bad.write_text(changed)
    r = runner.invoke(cli_app, ["ledger", "verify", str(bad)])
    assert r.exit_code == 1 and "eventID is not the hash" in r.stderr
    # a forger who also recomputes the eventID: the kg is in none of the signed entries
    forged = json.loads(text)
    weighing = next(e for e in forged["epcis"]["epcisBody"]["eventList"]
                    if e.get("bizStep") == "inspecting")
    old_id = weighing["eventID"]
    weighing["quantityList"][0]["quantity"] = 31120.0
    weighing["eventID"] = epcis.event_hash(weighing)
    forged["epcis"]["pw:ledgerRefs"][weighing["eventID"]] = forged["epcis"][
        "pw:ledgerRefs"].pop(old_id)
    bad.write_text(json.dumps(forged))
    problems, _ = evidence.verify(bad)
    assert problems == [f"EPCIS event #{forged['epcis']['epcisBody']['eventList'].index(weighing)}"
                        " (ObjectEvent): 31120 KGM is in none of its ledger entries"]
    # one changed byte in a ledger entry's base64: its proof fails
    entry = doc["proofs"][0]["entry"]
    flipped = ("A" if entry[8] != "A" else "B")
    doc["proofs"][0]["entry"] = entry[:8] + flipped + entry[9:]
    bad.write_text(json.dumps(doc))
    problems, _ = evidence.verify(bad)
    assert any("do not hash to leaf_hash" in p for p in problems)
    # a pinned key that is not the log's
    problems, _ = evidence.verify(pack, log_key=doc["log_key"].replace("trace-test",
                                                                        "other"))
    assert problems


def test_trace_report_renders_timeline_and_svg(db: Store, db_path: Path,
                                               tmp_path: Path) -> None:
    story = scripted(db, db_path)
    out = tmp_path / "report.html"
    code, _, err = _cli(db_path, "lot", "report", "LOT-A", "--out", str(out))
    assert code == 0, err
    page = out.read_text()
    assert "<svg" in page and "</svg>" in page and "<script" not in page
    assert not re.search(r"(src|href)=\"https?://", page)  # no CDN
    assert all(f"trip {t}" in page for t in story["trips"])
    assert "30120 kg" in page and "dest-feed-mill" in page
    assert page.count("<tr><td>20") >= 6  # the timeline's rows
    svg = ElementTree.fromstring(page[page.index("<svg"):page.index("</svg>") + 6])
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert "vessel MV Ocean Star" in labels or not story["lots_built"]
    assert "dest-feed-mill" in labels and "lot LOT-A" in labels


def test_trace_api_routes(db: Store, db_path: Path) -> None:
    story = scripted(db, db_path)
    token = auth.create_token(db, name="auditor-1", role="auditor")
    client = TestClient(create_app(db_path=db_path, site=SITE))
    h = {"Authorization": f"Bearer {token}"}
    r = client.get("/api/v1/trace/backward", params={"trip": story["trips"][0]}, headers=h)
    assert r.status_code == 200 and r.json()["lot"]["id"] == "LOT-A"
    r = client.get("/api/v1/trace/forward", params={"lot": "LOT-A"}, headers=h)
    assert r.status_code == 200 and len(r.json()["lot"]["trips"]) == 2
    r = client.get("/api/v1/lots/LOT-A/epcis", headers=h)
    assert r.status_code == 200 and r.json()["type"] == "EPCISDocument"
    assert client.get("/api/v1/lots/LOT-NONE/epcis", headers=h).status_code == 404
    r = client.get("/api/v1/trace/backward", params={"weighing": "wb-out:99"}, headers=h)
    assert r.status_code == 404
    assert client.get("/api/v1/trace/backward", headers=h).status_code == 422
    assert client.get("/api/v1/trace/forward", params={"lot": "LOT-A"}).status_code == 401


def test_trace_evidence_entry_newer_than_checkpoint_says_what_to_do(
        db: Store, db_path: Path, tmp_path: Path) -> None:
    from controller import holds
    scripted(db, db_path)
    holds.hold(db, "LOT-A", reason="after the checkpoint", actor="cli:alice")
    code, _, err = _cli(db_path, "lot", "evidence", "LOT-A", "--out", str(tmp_path / "p.json"))
    assert code == 1 and "portwatch ledger checkpoint" in err
    assert not (tmp_path / "p.json").exists()
    code, _, err = _cli(db_path, "ledger", "checkpoint")
    assert code == 0, err
    code, _, err = _cli(db_path, "lot", "evidence", "LOT-A", "--out", str(tmp_path / "p.json"))
    assert code == 0, err
    r = runner.invoke(cli_app, ["ledger", "verify", str(tmp_path / "p.json")])
    assert r.exit_code == 0 and "trusting the pack's own log key" in r.stderr


def test_trace_evidence_pack_requires_a_witness_cosignature(db: Store, db_path: Path,
                                                            tmp_path: Path) -> None:
    from controller.ledger import checkpoint
    from controller.ledger.witness import Witness
    from controller.storage import ledger_log

    from .trace_store import ORIGIN
    scripted(db, db_path)
    signer = checkpoint.log_signer(db_path, ORIGIN)
    w = Witness.init(tmp_path / "w1", "customs.example/w1", signer.verifier)
    other = Witness.init(tmp_path / "w2", "customs.example/w2", signer.verifier)
    cp = checkpoint.latest(db.conn)
    assert cp is not None
    checkpoint.add_cosignature(db.conn, cp.id, w.cosign(cp.note, [], 1_700_000_000),
                               w.verifier, 1)
    assert ledger_log.size(db.conn) >= cp.size
    pack = tmp_path / "pack.json"
    assert _cli(db_path, "lot", "evidence", "LOT-A", "--out", str(pack))[0] == 0
    r = runner.invoke(cli_app, ["ledger", "verify", str(pack), "--require-witness",
                                w.verifier.vkey])
    assert r.exit_code == 0 and "cosigned by customs.example/w1" in r.stdout
    r = runner.invoke(cli_app, ["ledger", "verify", str(pack), "--require-witness",
                                other.verifier.vkey])
    assert r.exit_code == 1 and "not cosigned by witness customs.example/w2" in r.stderr
