"""A real agent's own key, end to end on the controller side: the agent (micropython, 96 KiB
heap) announces its public key in its birth, the controller registers it as a ledger
decision and stores its weighings as device-signed; a weighing forged with the device's
HMAC secret (taken from its config file) and its broker rights is refused at ingest as
``bad_device_signature``; an export verifies offline with every event device-signed, and
the same forgery put straight into the log by someone holding the store and the log key
makes ``portwatch ledger verify`` fail at that entry."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from delivery import FAST, publish, send_trucks
from tools.procs import wait_until
from tools.rig import Rig

ROOT = Path(__file__).resolve().parents[1]


def _query(rig: Rig, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(rig.db_path, timeout=10)) as c:
        return c.execute(sql, args).fetchall()


def _cli(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PORTWATCH_DB": str(rig.db_path), "PORTWATCH_SITE": rig.site}
    return subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def _forged(rig: Rig, config: dict[str, Any], seq: int) -> tuple[str, bytes]:
    """A weighing with a valid HMAC under the device's own secret and no device signature."""
    from protocols import envelope, topics

    topic = topics.topic(rig.site, config["device_id"], "evt")
    fields = envelope.make(config["device_id"], 1, seq, 1764072000000, "weighing", {
        "plate": "辽B66666", "gross_kg": 30000, "tare_kg": 14000, "net_kg": 16000,
        "division_kg": 20, "stable_ms": 3000, "arrived_ts": 1764071990000,
        "model": "portwatch-sim"})
    return topic, envelope.seal(bytes.fromhex(config["secret_hex"]), config["key_id"], topic,
                                fields)


@pytest.mark.timeout(240)
def test_agent_key_registered_forgery_refused_at_ingest_and_by_offline_verify(
        rig: Rig, tmp_path: Path) -> None:
    agent = rig.add_weighbridge("wb-1", emulator_args=FAST, stable_s=0.4)
    rig.start_agent("wb-1")
    wait_until(lambda: rig.device("wb-1").get("device_pub") is not None, 60,
               what="wb-1's birth registers its device key")
    pub = rig.device("wb-1")["device_pub"]
    assert pub.startswith("04") and len(pub) == 130
    assert _query(rig, "SELECT count(*) FROM ledger_entries WHERE kind='decision' AND "
                  "subkind='device_key'") == [(1,)]  # from the birth, once

    send_trucks(agent, 0, 3)
    wait_until(lambda: len(rig.get("/api/v1/weighings", device_id="wb-1")) >= 3, 90,
               what="3 weighings stored")
    served = rig.get("/api/v1/weighings", device_id="wb-1")
    assert all(w["device_signed"] for w in served), served

    # the attacker has the device's config (its HMAC secret) and a login on its topics
    seq = max(w["seq"] for w in served) + 1000
    publish(rig.broker.port, [_forged(rig, agent.config, seq)], login=rig.test_account(),
            ca=rig.ca)

    def refused() -> int:
        return int(_query(rig, "SELECT count(*) FROM rejections WHERE device_id='wb-1' AND "
                          "reason='bad_device_signature'")[0][0])

    wait_until(lambda: refused() == 1, 30, what="the forgery refused as bad_device_signature")
    assert _query(rig, "SELECT count(*) FROM messages WHERE seq=?", seq)[0][0] == 0

    # an auditor's export verifies offline, every custody event signed by the device
    assert _cli(rig, "ledger", "checkpoint").returncode == 0
    out = tmp_path / "ledger.json"
    assert _cli(rig, "ledger", "export", "--out", str(out)).returncode == 0
    ok = _cli(rig, "ledger", "verify", str(out))
    assert ok.returncode == 0, ok.stderr
    signed = int(ok.stdout.split("custody events: ")[1].split(" signed")[0])
    assert signed >= 3 and "0 HMAC-only" in ok.stdout, ok.stdout
    assert any(json.loads(out.read_text())["entries"])

    # whoever holds the store (HMAC secrets) and the log key puts the forgery in the log
    from controller.ledger import entries
    from controller.storage import ledger_log, open_store

    topic, wire = _forged(rig, agent.config, seq + 1)
    db = open_store(rig.db_path)
    try:
        with db.transaction() as conn:
            [idx] = ledger_log.append(conn, [entries.device_message(
                device_id="wb-1", channel="evt", topic=topic, seq=seq + 1,
                received_ms=1764072000500, wire=wire)])
    finally:
        db.close()
    assert _cli(rig, "ledger", "checkpoint").returncode == 0
    assert _cli(rig, "ledger", "export", "--out", str(out)).returncode == 0
    bad = _cli(rig, "ledger", "verify", str(out))
    assert bad.returncode == 1
    assert f"entry {idx}: custody event of wb-1 seq {seq + 1} was not made by the device" \
        in bad.stderr, bad.stderr
