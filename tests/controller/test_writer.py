"""commit_batch: dedupe, conflicts, freshness, watermarks, and nothing stored on rejection."""

from __future__ import annotations

from typing import Any

from controller import registry
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import BatchResult, commit_batch
from controller.storage import Store
from ctl_helpers import SITE, signed, weighing_body


def _commit(db: Store, *msgs: Received) -> BatchResult:
    keys = registry.secrets_by_device(db)
    return commit_batch(db.conn, [check_message(m, site=SITE, keys=keys) for m in msgs])


def _dump(db: Store) -> dict[str, list[dict[str, Any]]]:
    return {t: list(db.db[t].rows) for t in ("messages", "weighings", "alarms", "health")}


def test_commit_stores_weighing_and_advances_watermark(db: Store,
                                                       device: dict[str, Any]) -> None:
    result = _commit(db, signed(device, seq=1), signed(device, seq=2, body=weighing_body(30000)))
    assert result.stored == 2
    assert result.watermarks == {"wb-1": 2}
    rows = list(db.db["weighings"].rows_where(order_by="seq"))
    assert [(r["seq"], r["gross_kg"], r["plate"]) for r in rows] == [
        (1, 45240, "辽B12345"), (2, 30000, "辽B12345")]
    assert registry.get(db, "wb-1")["committed_seq"] == 2


def test_commit_duplicate_is_counted_and_changes_nothing(db: Store,
                                                         device: dict[str, Any]) -> None:
    msg = signed(device, seq=1)
    _commit(db, msg)
    before = _dump(db)
    again = _commit(db, msg, msg)
    assert again.rejected == {"duplicate": 2}
    assert again.watermarks == {"wb-1": 1}  # re-acknowledged so the device can drop it
    assert _dump(db) == before


def test_commit_same_seq_other_content_is_a_conflict(db: Store,
                                                     device: dict[str, Any]) -> None:
    _commit(db, signed(device, seq=1))
    result = _commit(db, signed(device, seq=1, body=weighing_body(99980)))
    assert result.rejected == {"seq_conflict": 1}
    assert [r["gross_kg"] for r in db.db["weighings"].rows] == [45240]


def test_commit_gap_holds_watermark_until_filled(db: Store,
                                                 device: dict[str, Any]) -> None:
    assert _commit(db, signed(device, seq=1), signed(device, seq=3)).watermarks == {"wb-1": 1}
    assert _commit(db, signed(device, seq=2)).watermarks == {"wb-1": 3}


def test_commit_rejections_are_stored_with_reason_only(db: Store,
                                                       device: dict[str, Any]) -> None:
    good = signed(device, seq=1)
    bad = Received(good.topic, good.payload.replace(b"45240", b"45260"), 5)
    result = _commit(db, bad)
    assert result.rejected == {"bad_signature": 1}
    assert _dump(db) == {"messages": [], "weighings": [], "alarms": [], "health": []}
    rej = list(db.db["rejections"].rows)
    assert [(r["reason"], r["device_id"]) for r in rej] == [("bad_signature", "wb-1")]


def test_commit_health_updates_device_and_rejects_stale_replay(db: Store,
                                                               device: dict[str, Any]) -> None:
    h1 = signed(device, seq=1, channel="tele", kind="health",
                body={"fw": "0.1.0", "uptime_s": 10, "mem_free": 50000, "backlog": 0},
                ts=1764072000000, received_ms=1764072003000)
    h2 = signed(device, seq=2, channel="tele", kind="health", body={"fw": "0.1.0"})
    assert _commit(db, h1, h2).telemetry == 2
    row = registry.get(db, "wb-1")
    assert row["fw_version"] == "0.1.0" and row["tele_seq"] == 2
    assert _commit(db, h1).rejected == {"stale": 1}
    assert db.db["health"].count == 2


def test_commit_birth_and_death_follow_connection_order(db: Store,
                                                        device: dict[str, Any]) -> None:
    def state(kind: str, boot: int, seq: int) -> Received:
        return signed(device, seq=seq, boot=boot, channel="state", kind=kind,
                      body={"fw": "0.1.0"} if kind == "birth" else {})

    _commit(db, state("birth", 1, 1))
    assert registry.get(db, "wb-1")["status"] == "online"
    _commit(db, state("death", 1, 1))
    assert registry.get(db, "wb-1")["status"] == "offline"
    _commit(db, state("birth", 1, 2))  # reconnect without reboot
    assert registry.get(db, "wb-1")["status"] == "online"
    assert _commit(db, state("death", 1, 1)).rejected == {"stale": 1}  # an old will, late
    assert registry.get(db, "wb-1")["status"] == "online"
    assert _commit(db, state("birth", 1, 2)).rejected == {}  # retained birth again: no-op


def test_missing_ranges_reported_until_they_arrive(db: Store,
                                                   device: dict[str, Any]) -> None:
    from controller.storage.custody import missing_ranges

    _commit(db, *(signed(device, seq=s) for s in (1, 2, 5, 6, 9)))
    assert missing_ranges(db.conn, "wb-1", 2) == [(3, 4), (7, 8)]
    _commit(db, signed(device, seq=3), signed(device, seq=4))
    assert registry.get(db, "wb-1")["committed_seq"] == 6
    assert missing_ranges(db.conn, "wb-1", 6) == [(7, 8)]


def test_declared_lost_moves_the_watermark_and_leaves_missing(db: Store,
                                                              device: dict[str, Any]) -> None:
    from controller.completeness import declare_lost
    from controller.storage.custody import missing_ranges

    _commit(db, *(signed(device, seq=s) for s in (1, 4, 5, 8, 12)))
    assert declare_lost(db, "wb-1", 2, 3, reason="unreadable", actor="wb-1", now=1) == 5
    assert missing_ranges(db.conn, "wb-1", 5) == [(6, 7), (9, 11)]
    assert declare_lost(db, "wb-1", 9, 10, reason="test", actor="admin", now=2) == 5
    assert missing_ranges(db.conn, "wb-1", 5) == [(6, 7), (11, 11)]
    assert declare_lost(db, "wb-1", 6, 7, reason="test", actor="admin", now=3) == 10
    _commit(db, signed(device, seq=11))
    assert registry.get(db, "wb-1")["committed_seq"] == 12
    assert missing_ranges(db.conn, "wb-1", 12) == []


def test_a_lost_range_may_not_reach_past_what_the_device_has_numbered(
        db: Store, device: dict[str, Any]) -> None:
    from controller.completeness import declare_lost
    from controller.errors import Conflict
    from controller.storage import custody

    _commit(db, *(signed(device, seq=s) for s in (1, 2, 3, 72)))
    ledger_before = db.conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    try:
        declare_lost(db, "wb-1", 73, 473571143889, reason="careless", actor="admin", now=1)
    except Conflict as exc:
        assert "up to 72" in str(exc)
    else:
        raise AssertionError("a lost range beyond the device's seqs was accepted")
    assert registry.get(db, "wb-1")["committed_seq"] == 3
    assert custody.lost_ranges(db.conn, "wb-1") == []
    assert db.conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0] == ledger_before
    # its health says it has numbered up to 99 (the rest still in its outbox): that is allowed
    db.conn.execute("UPDATE devices SET health_json=? WHERE device_id='wb-1'",
                    ('{"next_seq": 100}',))
    assert custody.passed_seq(db.conn, "wb-1") == 99
    assert declare_lost(db, "wb-1", 4, 99, reason="flash replaced", actor="admin", now=2) == 99


def test_a_bogus_lost_range_in_an_old_store_never_moves_the_watermark_past_the_device(
        db: Store, device: dict[str, Any]) -> None:
    from controller.storage import custody

    _commit(db, *(signed(device, seq=s) for s in (1, 2)))
    # written straight into the store (as an older portwatch allowed), not through the API
    with db.transaction() as conn:
        custody.add_lost_range(conn, "wb-1", 3, 473571143889, reason="bad", actor="admin",
                               now_ms=1)
        conn.execute("UPDATE devices SET committed_seq=473571143889 WHERE device_id='wb-1'")
    result = _commit(db, signed(device, seq=3))
    assert result.watermarks == {"wb-1": 3}  # the ack that goes out: only what is stored
    assert registry.get(db, "wb-1")["committed_seq"] == 3


def test_migrating_a_schema_4_store_brings_a_bogus_watermark_back_to_the_device(
        db_path: Any, db: Store, device: dict[str, Any]) -> None:
    from controller.storage import open_store

    _commit(db, *(signed(device, seq=s) for s in (1, 2, 3)))
    db.conn.execute("UPDATE devices SET committed_seq=473571143889 WHERE device_id='wb-1'")
    db.conn.execute("PRAGMA user_version=4")  # as a store written before the rule
    db.close()
    again = open_store(db_path, create=True)
    assert registry.get(again, "wb-1")["committed_seq"] == 3
