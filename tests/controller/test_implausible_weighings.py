"""Signed but impossible weighings through the real ingest path and store: kept, flagged,
alerted, served with their flags; a message with a duplicate JSON key refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from controller import auth, registry
from controller.api.app import create_app
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import BatchResult, commit_batch
from controller.plausibility import Settings
from controller.storage import Store, open_store
from controller.supervision.runner import Runner
from ctl_helpers import SITE, signed, weighing_body
from protocols import envelope, topics

T0 = 1764072000000
YEAR_3000 = 32_503_680_000_000


def _device(db: Store) -> dict[str, Any]:
    return registry.provision(db, device_id="wb-7", site=SITE, kind="weighbridge",
                              driver={"type": "weighbridge", "map": "portwatch-sim",
                                      "host": "127.0.0.1", "port": 5020})


def _commit(db: Store, *msgs: Received, settings: Settings | None = None) -> BatchResult:
    keys = registry.secrets_by_device(db)
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                        supervise=Runner(), plausibility=settings)


def _hostile(device: dict[str, Any]) -> list[Received]:
    """What a compromised device or a faulty indicator can sign (portwatch-sim: 80 t, 20 kg)."""
    def w(seq: int, ts: int = T0, **change: Any) -> Received:
        return signed(device, seq=seq, ts=ts, body={**weighing_body(), **change})

    return [w(1, gross_kg=-40, tare_kg=0, net_kg=-40),
            w(2, net_kg=99_980),
            w(3, gross_kg=10**15, net_kg=10**15 - 15000),
            w(4, tare_kg=50_000, net_kg=45240 - 50_000),
            w(5, gross_kg=45241, net_kg=30241),
            w(6, plate=""),
            w(7, plate="辽B1\x002345"),
            w(8, plate="辽B12345\r\nX-Forged: 1"),
            w(9, plate="辽B\u202e54321"),
            w(10, plate="<script>alert(1)</script>"),
            w(11, ts=YEAR_3000),
            w(12)]  # a sound one: no flag, and the clock alert clears


def test_impossible_weighings_are_stored_flagged_alerted_and_served(db_path: Path, db: Store
                                                                    ) -> None:
    device = _device(db)
    result = _commit(db, *_hostile(device))
    assert result.stored == 12 and result.rejected == {}  # signed evidence is never dropped
    assert result.watermarks == {"wb-7": 12}
    rows = {r["seq"]: r for r in db.db.query("SELECT * FROM weighings")}
    flags = {seq: json.loads(r["flags_json"]) for seq, r in rows.items()}
    assert flags == {
        1: ["negative_weight", "tare_above_gross", "net_not_positive"],
        2: ["net_mismatch"],
        3: ["over_capacity"],
        4: ["tare_above_gross", "net_not_positive"],
        5: ["off_division"],
        6: ["empty_plate"],
        7: ["plate_unsafe", "plate_format"],
        8: ["plate_unsafe", "plate_format"],
        9: ["plate_unsafe", "plate_format"],
        10: ["plate_unsafe", "plate_format"],
        11: ["device_time_ahead"],
        12: []}
    assert rows[7]["plate"] == "辽B1\x002345" and rows[3]["gross_kg"] == 10**15  # as signed

    alerts = list(db.db.query("SELECT code, subject, severity, cleared_by FROM alerts "
                              "ORDER BY id"))
    by_code: dict[str, list[str]] = {}
    for a in alerts:
        by_code.setdefault(a["code"], []).append(a["subject"])
    assert by_code["weighing_inconsistent"] == [f"seq {s}" for s in (1, 2, 3, 4, 5)]
    assert by_code["plate_suspect"] == [f"seq {s}" for s in (6, 7, 8, 9, 10)]
    clock = [a for a in alerts if a["code"] == "device_clock_wrong"]
    assert clock == [{"code": "device_clock_wrong", "subject": "", "severity": "warning",
                      "cleared_by": "rule:device_time"}]  # raised by seq 11, cleared by 12
    decisions = db.conn.execute("SELECT count(*) FROM ledger_entries WHERE kind='decision' "
                                "AND subkind='alert'").fetchone()[0]
    assert decisions == len(alerts) + 1  # each raise and the clear are in the ledger

    client = TestClient(create_app(db_path=db_path, site=SITE))
    h = {"Authorization": "Bearer " + auth.create_token(db, name="op", role="operator")}
    served = {w["seq"]: w for w in client.get("/api/v1/weighings", headers=h).json()}
    assert {seq: w["flags"] for seq, w in served.items()} == flags
    one = client.get("/api/v1/weighings/wb-7/8", headers=h)
    assert one.json()["plate"] == "辽B12345\r\nX-Forged: 1"
    assert "\\r\\n" in one.text and "\r" not in one.text  # JSON-escaped, never raw
    script = client.get("/api/v1/weighings/wb-7/10", headers=h)
    assert script.headers["content-type"] == "application/json"
    flagged = client.get("/api/v1/weighings", params={"flagged": "true"}, headers=h).json()
    assert sorted(w["seq"] for w in flagged) == list(range(1, 12))
    clean = client.get("/api/v1/weighings", params={"flagged": "false"}, headers=h).json()
    assert [w["seq"] for w in clean] == [12]
    active = client.get("/api/v1/alerts", headers=h).json()
    mine = [a for a in active if a["rule"] in ("weighing_plausibility", "device_time")]
    assert len(mine) == 10 and {a["code"] for a in mine} == {"weighing_inconsistent",
                                                             "plate_suspect"}


def test_the_sites_plate_format_and_the_devices_clock_from_health(db: Store) -> None:
    device = _device(db)
    health = signed(device, seq=1, channel="tele", kind="health", ts=T0 - 3 * 3_600_000,
                    body={"fw": "1"}, received_ms=T0)
    late = signed(device, seq=1, ts=T0 - 3 * 3_600_000, received_ms=T0 + 1000,
                  body=weighing_body(plate="HH-AB 1234"))
    _commit(db, health, late, settings=Settings(plate_pattern="[A-Z]{1,3}-[A-Z]{1,2} [0-9]{1,4}"))
    [row] = db.db.query("SELECT flags_json FROM weighings")
    assert json.loads(row["flags_json"]) == ["device_clock_off"]  # plate fine at this site


def test_a_duplicate_json_key_is_refused_counted_and_nothing_stored(db: Store) -> None:
    device = _device(db)
    topic = topics.topic(SITE, "wb-7", "evt")
    body = json.dumps(weighing_body())[:-1] + ', "gross_kg": 1}'  # read two ways
    fields = envelope.make("wb-7", 1, 1, T0, "weighing", {})
    raw = json.dumps(fields).replace('"body": {}', '"body": ' + body).encode()
    secret = bytes.fromhex(device["secret_hex"])
    wire = raw + b"\nk1:" + envelope.signature(secret, topic, raw).encode()
    msg = Received(topic, wire, T0 + 500)
    verdict = check_message(msg, site=SITE, keys=registry.secrets_by_device(db))
    assert (getattr(verdict, "reason", None), getattr(verdict, "detail", None)) == (
        "duplicate_key", "key 'gross_kg' appears twice in one JSON object")
    result = _commit(db, msg)
    assert result.rejected == {"duplicate_key": 1} and result.stored == 0
    assert db.db["messages"].count == 0 and db.db["weighings"].count == 0
    [rej] = db.db.query("SELECT reason, device_id FROM rejections")
    assert rej == {"reason": "duplicate_key", "device_id": "wb-7"}


def test_weighings_of_a_schema_4_store_are_served_as_unchecked(db_path: Path, db: Store
                                                               ) -> None:
    device = _device(db)
    _commit(db, signed(device, seq=1))
    # as a store written before schema 5: no flags column
    db.conn.execute("ALTER TABLE weighings DROP COLUMN flags_json")
    db.conn.execute("PRAGMA user_version=4")
    db.close()
    again = open_store(db_path, create=True)
    _commit(again, signed(device, seq=2, body=weighing_body(plate="")))
    client = TestClient(create_app(db_path=db_path, site=SITE))
    h = {"Authorization": "Bearer " + auth.create_token(again, name="op", role="operator")}
    served = {w["seq"]: w["flags"] for w in client.get("/api/v1/weighings", headers=h).json()}
    assert served == {1: None, 2: ["empty_plate"]}
    unflagged = client.get("/api/v1/weighings", params={"flagged": "false"}, headers=h).json()
    assert [w["seq"] for w in unflagged] == [1]
