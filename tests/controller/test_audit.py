"""The audit: served rows rebuilt from the ledger; every kind of tampering named by table and
key, an honest store after a realistic run clean (controller/audit.py,
`portwatch ledger audit`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller import audit, registry
from controller.completeness import declare_lost
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.plausibility import Settings
from controller.storage import Store, read_snapshot
from ctl_helpers import SITE, signed, weighing_body

T0 = 1764072000000
PORTWATCH = str(Path(sys.executable).parent / "portwatch")


def _commit(db: Store, *msgs: Received, settings: Settings | None = None,
            recorded: dict[str, dict[str, Any]] | None = None) -> None:
    keys = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs],
                 plausibility=settings, recorded_limits=recorded)


def _health(device: dict[str, Any], seq: int, *, next_seq: int, skew_ms: int,
            received_ms: int) -> Received:
    msg: Received = signed(device, seq=seq, channel="tele", kind="health",
                           body={"fw": "0.1.0", "uptime_s": 10, "mem_free": 50000,
                                 "backlog": 0, "next_seq": next_seq},
                           ts=received_ms + skew_ms, received_ms=received_ms)
    return msg


def realistic_run(db: Store) -> None:
    """Two weighbridges over a day: weighings (plausible and not), alarms, a device gap, a
    refused notice, health that puts a clock off and back, an admin's lost range, a site
    plate format that is not the default, batches of several sizes."""
    site = Settings(plate_pattern="[A-Z]{2}[0-9]{4}", max_clock_skew_ms=60_000)
    a = registry.provision(db, device_id="wb-1", site=SITE, kind="weighbridge", driver={})
    b = registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge",
                           driver={"type": "weighbridge", "map": "portwatch-sim",
                                   "host": "127.0.0.1", "port": 5020, "division_kg": 50})
    recorded: dict[str, dict[str, Any]] = {}
    _commit(db, signed(a, seq=1, body=weighing_body(45240, "AB1234")),
            signed(a, seq=2, body=weighing_body(45240)),             # plate_format
            signed(a, seq=3, body={**weighing_body(30000, "AB1234"), "net_kg": 1}),
            signed(b, seq=1, body=weighing_body(40000, "CD5678")),   # division_mismatch
            settings=site, recorded=recorded)
    _commit(db, signed(a, seq=4, kind="alarm", body={"alarm": "overload", "state": "raised",
                                                      "detail": {"kg": 160000}}),
            signed(a, seq=5, kind="gap", body={"reason": "flash_crc"}),
            signed(a, seq=6, kind="refused", body={
                "count": 2, "kinds": {"weighing": 2}, "since_ts": T0 - 60_000,
                "until_ts": T0 - 1000, "reason": "outbox_full"}),
            _health(a, 1, next_seq=12, skew_ms=600_000, received_ms=T0 + 1000),
            settings=site, recorded=recorded)
    # the clock is off now: the next weighings carry device_clock_off
    _commit(db, signed(a, seq=7, body=weighing_body(45240, "AB1234"), received_ms=T0 + 2000),
            signed(a, seq=8, kind="alarm", body={"alarm": "overload", "state": "cleared"}),
            signed(a, seq=10, body=weighing_body(50000, "AB1234")),
            settings=site, recorded=recorded)
    _commit(db, _health(a, 2, next_seq=12, skew_ms=20, received_ms=T0 + 3000),
            signed(a, seq=11, body=weighing_body(52000, "AB1234"), received_ms=T0 + 3500),
            signed(b, seq=2, body=weighing_body(41000, "CD5678")),
            settings=site, recorded=recorded)
    declare_lost(db, "wb-1", 9, 9, reason="indicator replaced", actor="admin", now=T0 + 4000)
    # a controller restart: its memory of recorded limits is gone, the site's settings stay
    _commit(db, signed(b, seq=3, body=weighing_body(42000, "CD5678")), settings=site,
            recorded={})


def _audit(db: Store) -> audit.AuditReport:
    with read_snapshot(db.path) as conn:
        return audit.audit_store(conn, chunk=100)


def test_an_honest_store_after_a_realistic_run_audits_clean(db: Store) -> None:
    realistic_run(db)
    flags = {(r["device_id"], r["seq"]): json.loads(r["flags_json"])
             for r in db.db["weighings"].rows}
    # the run made the flags the audit must reproduce, from limits it cannot see in the event
    assert "plate_format" in flags[("wb-1", 2)] and "net_mismatch" in flags[("wb-1", 3)]
    assert "device_clock_off" in flags[("wb-1", 7)] and flags[("wb-1", 11)] == []
    assert "division_mismatch" in flags[("wb-2", 1)]
    assert registry.get(db, "wb-1")["committed_seq"] == 11
    report = _audit(db)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.entries == 13 and report.unchecked_flags == 0
    assert report.tables["weighings"].checked == 9
    assert report.tables["lost_ranges"].checked == 2  # the device's gap and the admin's


TAMPERING = [
    ("UPDATE weighings SET net_kg = net_kg - 1 WHERE device_id='wb-1' AND seq=1",
     ("weighings", "wb-1/1", "edited"), "net_kg"),
    ("DELETE FROM weighings WHERE device_id='wb-2' AND seq=2",
     ("weighings", "wb-2/2", "deleted"), None),
    ("INSERT INTO weighings (device_id, seq, plate, gross_kg, tare_kg, net_kg, division_kg, "
     "stable_ms, arrived_ts, device_ts, received_ms, flags_json) VALUES ('wb-1', 9, 'AB1234', "
     "40000, 15000, 25000, 20, 3000, 1, 1, 1, '[]')", ("weighings", "wb-1/9", "added"), None),
    ("UPDATE weighings SET flags_json='[]' WHERE device_id='wb-1' AND seq=2",
     ("weighings", "wb-1/2", "edited"), "flags_json"),
    ("UPDATE alarms SET state='cleared' WHERE device_id='wb-1' AND seq=4",
     ("alarms", "wb-1/4", "edited"), "state"),
    ("DELETE FROM lost_ranges WHERE declared_by='admin'",
     ("lost_ranges", "wb-1/9-9", "deleted"), None),
    ("UPDATE devices SET committed_seq=8 WHERE device_id='wb-1'",
     ("devices", "wb-1/committed_seq", "edited"), "committed_seq"),
    ("UPDATE messages SET payload=CAST(replace(CAST(payload AS TEXT), '52000', '52020') AS "
     "BLOB) WHERE device_id='wb-1' AND seq=11", ("messages", "wb-1/11", "edited"), "payload"),
    ("DELETE FROM refused_notices", ("refused_notices", "wb-1/6", "deleted"), None),
    ("DELETE FROM devices WHERE device_id='wb-2'", ("devices", "wb-2/committed_seq", "deleted"),
     None),
    ("CREATE TRIGGER lighter AFTER INSERT ON weighings BEGIN UPDATE weighings SET "
     "net_kg = net_kg - 20 WHERE rowid = new.rowid; END", ("weighings", "lighter", "trigger"),
     None),
]


@pytest.mark.parametrize(("sql", "found", "column"), TAMPERING,
                         ids=[t[1][0] + ":" + t[1][2] + (":" + t[2] if t[2] else "")
                              for t in TAMPERING])
def test_each_kind_of_tampering_is_named_by_table_and_key(
        db: Store, sql: str, found: tuple[str, str, str], column: str | None) -> None:
    realistic_run(db)
    db.conn.execute(sql)
    report = _audit(db)
    got = [(m.table, m.key, m.problem) for m in report.mismatches]
    assert got == [found], [m.as_json() for m in report.mismatches]
    if column is not None:
        assert [c[0] for c in report.mismatches[0].columns] == [column]


def test_the_cli_exits_1_naming_an_edited_and_a_deleted_weighing(db: Store) -> None:
    realistic_run(db)
    clean = subprocess.run([PORTWATCH, "ledger", "audit", "--db", str(db.path)],
                           capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "OK: every served row is what the ledger's entries make" in clean.stdout
    db.conn.execute("UPDATE weighings SET net_kg=1000 WHERE device_id='wb-1' AND seq=10")
    db.conn.execute("DELETE FROM weighings WHERE device_id='wb-2' AND seq=3")
    r = subprocess.run([PORTWATCH, "ledger", "audit", "--db", str(db.path)],
                       capture_output=True, text=True)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "MISMATCH weighings wb-1/10: edited; net_kg stored 1000, expected 35000" in r.stdout
    assert "MISMATCH weighings wb-2/3: deleted" in r.stdout
    j = subprocess.run([PORTWATCH, "ledger", "audit", "--db", str(db.path), "--json"],
                       capture_output=True, text=True)
    assert j.returncode == 1
    doc = json.loads(j.stdout)
    assert doc["tables"]["weighings"] == {"checked": 8, "edited": 1, "deleted": 1, "added": 0}
    assert [(m["table"], m["key"], m["problem"]) for m in doc["mismatches"]] == [
        ("weighings", "wb-1/10", "edited"), ("weighings", "wb-2/3", "deleted")]


def test_the_cli_exits_2_on_a_store_it_cannot_read(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    r = subprocess.run([PORTWATCH, "ledger", "audit", "--db", str(tmp_path / "junk.db")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot audit" in r.stderr
    r = subprocess.run([PORTWATCH, "ledger", "audit", "--db", str(tmp_path / "none.db")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no store at" in r.stderr


def test_weighings_stored_before_limits_were_recorded_are_counted_not_guessed(
        db: Store, device: dict[str, Any]) -> None:
    _commit(db, signed(device, seq=1), signed(device, seq=2))
    # a store from before schema 7: the limits decisions did not exist
    db.conn.execute("DELETE FROM ledger_entries WHERE subkind='limits'")
    report = _audit(db)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.unchecked_flags == 2
    db.conn.execute("UPDATE weighings SET gross_kg=1 WHERE seq=2")
    assert [(m.key, m.problem) for m in _audit(db).mismatches] == [("wb-1/2", "edited")]


def test_audit_new_checks_only_what_the_entries_from_an_index_made(db: Store) -> None:
    realistic_run(db)
    replay = audit.Replay.load(db.conn)
    report, pos = audit.audit_new(db.conn, 0, replay, chunk=7)
    assert report.clean, [m.as_json() for m in report.mismatches]
    assert report.entries == 13
    a = registry.get(db, "wb-1")
    _commit(db, signed(a, seq=12, body=weighing_body(47000, "AB1234")))
    db.conn.execute("UPDATE weighings SET plate='XX0000' WHERE device_id='wb-1' AND seq=12")
    db.conn.execute("UPDATE weighings SET plate='XX0000' WHERE device_id='wb-1' AND seq=1")
    report, pos2 = audit.audit_new(db.conn, pos, replay)
    assert pos2 > pos
    # only the new entry's row is looked at; the old edit is the full audit's to find
    assert [(m.key, m.problem) for m in report.mismatches] == [("wb-1/12", "edited")]


def _tampered_alerts(db: Store) -> list[dict[str, Any]]:
    return list(db.db.query("SELECT subject, severity, device_id FROM alerts WHERE "
                            "code='store_tampered' ORDER BY id"))


def _mismatch_decisions(db: Store) -> list[dict[str, Any]]:
    from controller.ledger import entries
    rows = db.conn.execute("SELECT entry FROM ledger_entries WHERE subkind='audit_mismatch' "
                           "ORDER BY idx").fetchall()
    out = []
    for (data,) in rows:
        e = entries.decode(bytes(data))
        assert isinstance(e, entries.Decision)
        out.append(e.body)
    return out


def test_the_watch_alerts_and_decides_once_per_mismatch_across_restarts(db: Store) -> None:
    from controller.audit_watch import AuditWatch
    realistic_run(db)
    watch = AuditWatch(db.path)
    try:
        assert watch.full().clean and watch.new_entries().clean
        assert _tampered_alerts(db) == [] and _mismatch_decisions(db) == []  # honest: nothing
        db.conn.execute("UPDATE weighings SET net_kg=1 WHERE device_id='wb-1' AND seq=7")
        db.conn.execute("DELETE FROM weighings WHERE device_id='wb-2' AND seq=1")
        assert len(watch.full().mismatches) == 2
        assert _tampered_alerts(db) == [
            {"subject": "weighings wb-1/7", "severity": "critical", "device_id": "wb-1"},
            {"subject": "weighings wb-2/1", "severity": "critical", "device_id": "wb-2"}]
        decided = _mismatch_decisions(db)
        assert [(d["table"], d["key"], d["problem"]) for d in decided] == [
            ("weighings", "wb-1/7", "edited"), ("weighings", "wb-2/1", "deleted")]
        assert decided[0]["columns"] == [{"column": "net_kg", "stored": 1, "expected": 30240}]
        watch.full()  # found again: not reported again
        watch.new_entries()  # its own decisions are new entries: they audit clean
        assert len(_tampered_alerts(db)) == 2 and len(_mismatch_decisions(db)) == 2
    finally:
        watch.close()
    again = AuditWatch(db.path)  # a restarted controller remembers through the ledger
    try:
        assert len(again.full().mismatches) == 2
        assert len(_tampered_alerts(db)) == 2 and len(_mismatch_decisions(db)) == 2
    finally:
        again.close()


def test_the_watch_finds_a_new_row_that_differs_from_its_entry(db: Store) -> None:
    from controller.audit_watch import AuditWatch
    realistic_run(db)
    watch = AuditWatch(db.path)
    try:
        watch.full()
        # a trigger rewrites each weighing as the ingest writes it
        db.conn.execute("CREATE TRIGGER lighter AFTER INSERT ON weighings BEGIN UPDATE "
                        "weighings SET net_kg = net_kg - 20 WHERE rowid = new.rowid; END")
        a = registry.get(db, "wb-1")
        _commit(db, signed(a, seq=12, body=weighing_body(47000, "AB1234")))
        found = watch.new_entries().mismatches
        assert [(m.table, m.key, m.problem) for m in found] == [("weighings", "wb-1/12",
                                                                 "edited")]
        assert [s["subject"] for s in _tampered_alerts(db)] == ["weighings wb-1/12"]
    finally:
        watch.close()


def test_audit_settings_come_from_the_environment_and_bad_ones_are_refused() -> None:
    from controller.audit_watch import AuditSettings
    from controller.errors import ConfigError
    s = AuditSettings.from_env({"PORTWATCH_AUDIT_NEW_S": "0.5", "PORTWATCH_AUDIT_FULL_S": "0"})
    assert (s.new_every_s, s.full_every_s) == (0.5, 0.0)
    assert AuditSettings.from_env({}) == AuditSettings()
    for bad in ({"PORTWATCH_AUDIT_NEW_S": "soon"}, {"PORTWATCH_AUDIT_FULL_S": "-1"},
                {"PORTWATCH_AUDIT_NEW_S": "nan"}):
        with pytest.raises(ConfigError):
            AuditSettings.from_env(bad)


def test_served_custody_records_carry_their_leaf_index_and_entry_hash(db: Store) -> None:
    import base64

    from fastapi.testclient import TestClient

    from controller import auth
    from controller.api.app import create_app
    from controller.ledger import tree
    realistic_run(db)
    client = TestClient(create_app(db_path=db.path, site=SITE))
    h = {"Authorization": "Bearer " + auth.create_token(db, name="aud", role="auditor")}
    weighings = client.get("/api/v1/weighings", headers=h).json()
    alarms = client.get("/api/v1/alarms", headers=h).json()
    one = client.get("/api/v1/weighings/wb-1/10", headers=h).json()
    assert len(weighings) == 9 and len(alarms) == 2 and one in weighings
    for record in [*weighings, *alarms]:
        # one step from the record to its proof: the entry is this event's message
        proof = client.get("/api/v1/ledger/proofs/inclusion",
                           params={"index": record["leaf_index"]}, headers=h).json()
        assert base64.b64decode(proof["leaf_hash"]).hex() == record["entry_hash"]
        assert tree.leaf_hash(base64.b64decode(proof["entry"])).hex() == record["entry_hash"]
        assert (proof["view"]["device_id"], proof["view"]["seq"]) == (record["device_id"],
                                                                     record["seq"])


def test_a_watermark_over_a_lost_range_past_the_last_event_is_held_exactly(
        db: Store, device: dict[str, Any]) -> None:
    _commit(db, signed(device, seq=1), signed(device, seq=2),
            _health(device, 1, next_seq=10, skew_ms=0, received_ms=T0))
    declare_lost(db, "wb-1", 3, 9, reason="outbox wiped", actor="admin", now=T0 + 1)
    assert registry.get(db, "wb-1")["committed_seq"] == 9
    assert _audit(db).clean
    db.conn.execute("UPDATE devices SET committed_seq=5 WHERE device_id='wb-1'")
    found = _audit(db).mismatches
    assert [(m.key, m.columns) for m in found] == [("wb-1/committed_seq",
                                                    (("committed_seq", 5, 9),))]


def test_compare_names_edited_deleted_and_added_rows_by_key() -> None:
    report = audit.AuditReport()
    want = {("wb-1", 1): {"device_id": "wb-1", "seq": 1, "alarm": "overload", "state": "raised",
                          "detail_json": "{}", "device_ts": 5, "received_ms": 6},
            ("wb-1", 2): {"device_id": "wb-1", "seq": 2, "alarm": "overload",
                          "state": "cleared", "detail_json": "{}", "device_ts": 7,
                          "received_ms": 8}}
    stored = [{**want[("wb-1", 1)], "state": "cleared", "received_ms": 9},
              {**want[("wb-1", 2)], "seq": 3}]
    audit.compare("alarms", want, stored, report)
    assert [(m.key, m.problem, m.columns) for m in report.mismatches] == [
        ("wb-1/1", "edited", (("state", "cleared", "raised"), ("received_ms", 9, 6))),
        ("wb-1/3", "added", ()), ("wb-1/2", "deleted", ())]
    assert report.tables["alarms"] == audit.TableCount(checked=2, edited=1, deleted=1, added=1)


def test_lost_ranges_compare_as_a_multiset_of_values_not_by_id() -> None:
    row = {"device_id": "wb-1", "first_seq": 4, "last_seq": 6, "reason": "rot",
           "declared_by": "admin", "declared_ms": 1}
    report = audit.AuditReport()
    audit.compare_lost("wb-1", [row, row], [{**row, "id": 7}, {**row, "id": 9}], report)
    assert report.clean
    audit.compare_lost("wb-1", [row, row], [{**row, "id": 7, "declared_by": "someone"}],
                       report)
    assert sorted((m.key, m.problem) for m in report.mismatches) == [
        ("wb-1/4-6", "added"), ("wb-1/4-6", "deleted"), ("wb-1/4-6", "deleted")]


def test_replay_judges_each_event_by_the_limits_recorded_last_before_it() -> None:
    from controller.ledger import entries
    replay = audit.Replay()
    for idx, cap in ((3, 80_000), (10, 60_000)):
        replay.add_decision(idx, entries.Decision("limits", "controller", 1, {
            "device_id": "wb-1", "capacity_kg": cap, "division_kg": 20,
            "plate_pattern": ".*", "max_clock_skew_ms": 300_000,
            "max_delay_ms": 604_800_000, "clock_offset_ms": None}))
    assert replay.limits_at("wb-1", 3) is None  # recorded at 3: for events after it
    assert [getattr(replay.limits_at("wb-1", i), "capacity_kg", None) for i in (4, 10, 11)] \
        == [80_000, 80_000, 60_000]
    assert replay.limits_at("wb-2", 11) is None
