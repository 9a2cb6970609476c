"""The running controller audits its store: through a real Mosquitto, signed weighings are
stored and an honest run raises nothing; a weighing edited and one deleted straight in
SQLite, behind the controller's back, raise one critical ``store_tampered`` alert and one
``audit_mismatch`` ledger decision each, and a restarted controller does not raise them
again."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.ledger import entries
from delivery import publish
from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

DEVICE = "wb-audit"


@pytest.fixture
def audited_rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    # the controller process takes its audit timers from its environment
    monkeypatch.setenv("PORTWATCH_AUDIT_NEW_S", "0.2")
    monkeypatch.setenv("PORTWATCH_AUDIT_FULL_S", "0.5")
    r = Rig(tmp_path / "site")
    try:
        r.start()
    except BaseException:
        r.stop()
        raise
    try:
        yield r
    finally:
        r.stop()


def _weighing(cfg: dict[str, Any], seq: int) -> tuple[str, bytes]:
    topic = topics.topic(cfg["site"], DEVICE, "evt")
    now = int(time.time() * 1000)
    body = {"plate": "辽B12345", "gross_kg": 45000 + 20 * seq, "tare_kg": 15000,
            "net_kg": 30000 + 20 * seq, "division_kg": 20, "stable_ms": 3000,
            "arrived_ts": now - 8000, "model": "portwatch-sim"}
    fields = envelope.make(DEVICE, 1, seq, now, "weighing", body)
    return topic, envelope.seal(bytes.fromhex(cfg["secret_hex"]), cfg["key_id"], topic, fields)


def _full_audits(rig: Rig, clean: bool) -> int:
    text = rig.controller_log.read_text(errors="replace")
    return sum(1 for line in text.splitlines()
               if "portwatch.audit" in line and " custody events from " in line
               and line.rstrip().endswith("clean") == clean)


def _tampered(rig: Rig) -> list[dict[str, Any]]:
    return [a for a in rig.get("/api/v1/alerts") if a["code"] == "store_tampered"]


def _decisions(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT entry FROM ledger_entries WHERE subkind='audit_mismatch' "
                            "ORDER BY idx").fetchall()
    out = []
    for (data,) in rows:
        e = entries.decode(bytes(data))
        assert isinstance(e, entries.Decision)
        out.append(e.body)
    return out


def test_the_running_controller_alerts_once_on_rows_edited_behind_its_back(
        audited_rig: Rig) -> None:
    rig = audited_rig
    cfg = rig.provision(DEVICE, driver={"type": "weighbridge", "map": "portwatch-sim",
                                        "host": "127.0.0.1", "port": 5020})
    publish(rig.broker.port, [_weighing(cfg, s) for s in (1, 2, 3, 4)],
            login=rig.credentials(DEVICE), client_id=DEVICE, ca=rig.ca)
    wait_until(lambda: rig.device(DEVICE)["committed_seq"] == 4, 30,
               what="four signed weighings stored")
    seen = _full_audits(rig, clean=True)
    wait_until(lambda: _full_audits(rig, clean=True) >= seen + 2, 30,
               what="two full audits of the store with its weighings")
    assert _tampered(rig) == [] and _decisions(rig.db_path) == []  # an honest run: nothing

    with sqlite3.connect(rig.db_path) as conn:
        conn.execute("UPDATE weighings SET net_kg = net_kg - 1000 WHERE device_id=? AND seq=2",
                     (DEVICE,))
        conn.execute("DELETE FROM weighings WHERE device_id=? AND seq=3", (DEVICE,))
    alerts = wait_until(lambda: len(_tampered(rig)) == 2 and _tampered(rig), 30,
                        what="store_tampered alerts for the edited and the deleted weighing")
    assert sorted((a["subject"], a["severity"]) for a in alerts) == [
        (f"weighings {DEVICE}/2", "critical"), (f"weighings {DEVICE}/3", "critical")]
    decided = _decisions(rig.db_path)
    assert sorted((d["key"], d["problem"]) for d in decided) == [
        (f"{DEVICE}/2", "edited"), (f"{DEVICE}/3", "deleted")]
    edit = next(d for d in decided if d["problem"] == "edited")
    assert edit["columns"] == [{"column": "net_kg", "stored": 29040, "expected": 30040}]
    served = {w["seq"]: w for w in rig.get("/api/v1/weighings", device_id=DEVICE)}
    assert served[2]["net_kg"] == 29040 and 3 not in served  # served as stored, and alerted

    # found again by every full audit, and by a restarted controller: reported once
    seen = _full_audits(rig, clean=False)
    wait_until(lambda: _full_audits(rig, clean=False) >= seen + 2, 30,
               what="two more full audits")
    rig.stop_controller()
    rig.start_controller()
    wait_until(lambda: _full_audits(rig, clean=False) >= seen + 3, 30,
               what="the restarted controller's start audit")
    assert len(_tampered(rig)) == 2 and len(_decisions(rig.db_path)) == 2
    log = rig.controller_log.read_text(errors="replace")
    assert "store tampered: weighings wb-audit/2 edited" in log
    assert json.dumps({"column": "net_kg", "stored": 29040, "expected": 30040}) in log
