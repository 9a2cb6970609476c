"""The office feed on a real store: records queued in the trip's transaction, signed with the
log key and verified as the office does, acks, back-off, office_unreachable, logins."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controller import alerts, auth, broker_auth, office_feed, registry, trips
from controller.api.app import create_app
from controller.errors import Conflict, InvalidInput
from controller.ingest.service import BrokerSettings
from controller.ingest.verify import check_message
from controller.ingest.writer import commit_batch
from controller.ledger import checkpoint, entries, keys, note
from controller.ledger.errors import LedgerError
from controller.office_accounts import FEED_USER
from controller.office_publisher import OfficePublisher
from controller.office_record import (
    MAX_RECORD_BYTES,
    RecordError,
    parse_ack,
    record_text,
    sign,
    verify,
)
from controller.storage import Store, ledger_log
from controller.storage import offices as rows
from ctl_helpers import SITE, signed

T0 = 1_764_072_000_000


def _trip(db: Store, device: dict[str, Any] | None, trip_id: str = "ORD-1",
          destination: str = "dest-a", time_ms: int = T0) -> list[str]:
    """A trip departs (the trips code's decision, which tells the feed in its transaction);
    return the offices its record was queued for."""
    with db.transaction() as conn:
        trips.record_trip(conn, {
            "trip_id": trip_id, "event": "departed", "ts": time_ms, "tracker_id": "trk-1",
            "plate": "辽B12345", "lot": "LOT-7", "destination": destination,
            "corridor": "cor-a", "gate_device": device["device_id"] if device else "wb-out",
            "weighing_seq": 1, "net_kg": 30240}, "gate:wb-1", time_ms)
        return [d["office_id"] for d in rows.deliveries(conn, trip_id)]


def _signer(db_path: Path) -> note.Signer:
    return checkpoint.log_signer(db_path, checkpoint.origin_for(SITE))


def _add(db: Store, office_id: str = "off-a", destinations: tuple[str, ...] = ("dest-a",)) -> str:
    return office_feed.add_office(db, office_id=office_id, name=office_id,
                                  destinations=list(destinations), actor="test", time_ms=T0)


def _weigh(db: Store, device: dict[str, Any]) -> None:
    keyring = registry.secrets_by_device(db)
    commit_batch(db.conn, [check_message(signed(device, seq=1), site=SITE, keys=keyring)])


def _sent(db: Store, office_id: str, seq: int, at: int) -> None:
    with db.transaction() as conn:
        rows.mark_sent(conn, office_id, seq, sent_ms=at, next_ms=at + 2000)


def test_record_departure_is_queued_signed_and_verified_by_the_office(
        db: Store, db_path: Path, device: dict[str, Any]) -> None:
    _add(db)
    _add(db, "off-b", ("dest-b",))
    _weigh(db, device)
    assert _trip(db, device) == ["off-a"]
    [row] = rows.due(db.conn, T0)
    signer = _signer(db_path)
    got = verify(sign(row["record"], signer).encode(), signer.verifier, "off-a")
    r = got.record
    assert (got.trip_id, got.version, r["office_seq"]) == ("ORD-1", 1, 1)
    assert r["order"]["plate"] == "辽B12345" and r["order"]["lot"] == "LOT-7"
    dep = r["departure"]
    assert (dep["gross_kg"], dep["tare_kg"], dep["net_kg"]) == (45240, 15000, 30240)
    leaf = ledger_log.leaf_hash_at(db.conn, dep["ledger_index"])
    assert dep["entry_hash"] == leaf.hex()
    assert [e["event"] for e in r["events"]] == ["departed"]


def test_record_noted_again_is_a_new_version_for_each_office(db: Store) -> None:
    _add(db)
    _add(db, "off-all", ("*",))
    _trip(db, None)
    with db.transaction() as conn:
        assert office_feed.note_trip_change(conn, "ORD-1", T0 + 5) == ["off-a", "off-all"]
    assert [(d["office_id"], d["office_seq"], d["version"])
            for d in rows.deliveries(db.conn, "ORD-1")] == \
        [("off-a", 1, 1), ("off-a", 2, 2), ("off-all", 1, 1), ("off-all", 2, 2)]


def test_record_for_a_destination_no_office_receives_queues_nothing(db: Store) -> None:
    _add(db)
    assert _trip(db, None, destination="dest-z") == []
    assert rows.due(db.conn, T0 + 10**9) == []


def test_record_of_a_rolled_back_trip_decision_is_not_queued(db: Store) -> None:
    _add(db)
    with pytest.raises(RuntimeError), db.transaction() as conn:
        trips.record_trip(conn, {"trip_id": "ORD-9", "event": "departed", "ts": T0,
                                 "destination": "dest-a", "tracker_id": "trk-1"}, "t", T0)
        assert len(rows.deliveries(conn, "ORD-9")) == 1
        raise RuntimeError("the trip decision's transaction fails after the note")
    assert rows.due(db.conn, T0 + 10**9) == []


def test_record_versions_and_office_seqs_grow_with_each_change(db: Store) -> None:
    _add(db)
    _trip(db, None)
    with db.transaction() as conn:
        trips.record_trip(conn, {"trip_id": "ORD-1", "event": "corridor_deviation",
                                 "ts": T0 + 60_000}, "rule:trip_corridor", T0 + 60_000)
    _trip(db, None, trip_id="ORD-2")
    due = rows.due(db.conn, T0 + 10**9)
    assert [(r["office_seq"], r["trip_id"], r["version"]) for r in due] == \
        [(1, "ORD-1", 1), (2, "ORD-1", 2), (3, "ORD-2", 1)]
    second = json.loads(due[1]["record"].split("\n")[1])
    assert [e["event"] for e in second["events"]] == ["departed", "corridor_deviation"]


@pytest.mark.parametrize("tamper", ["altered byte", "other key", "other office", "no header"])
def test_record_verify_refuses_what_the_controller_did_not_sign_for_this_office(
        db: Store, db_path: Path, tmp_path: Path, tamper: str) -> None:
    _add(db)
    _trip(db, None)
    text = rows.due(db.conn, T0)[0]["record"]
    signer = _signer(db_path)
    data = sign(text, signer)
    office = "off-a"
    if tamper == "altered byte":
        data = data.replace("LOT-7", "LOT-8")
    elif tamper == "other key":
        other = note.Signer(signer.name, note.ED25519,
                            keys.load_or_create_key(tmp_path / "other.pem"))
        data = sign(text, other)
    elif tamper == "other office":
        office = "off-b"
    else:
        data = sign(text.replace("portwatch trip record v1", "portwatch trip record v9"),
                    signer)
    with pytest.raises(RecordError):
        verify(data.encode(), signer.verifier, office)


def test_record_too_big_keeps_its_latest_events_under_the_bound() -> None:
    events = [{"idx": i, "event": "stop", "detail": {"pad": "x" * 300}} for i in range(200)]
    text = record_text({"trip_id": "T", "version": 1, "events": events})
    body = json.loads(text.split("\n")[1])
    assert len(text.encode()) <= MAX_RECORD_BYTES
    assert body["events_trimmed"] is True and body["events"][-1]["idx"] == 199


def test_ack_covers_the_version_and_earlier_ones_and_is_logged_once(db: Store) -> None:
    _add(db)
    _trip(db, None)
    with db.transaction() as conn:
        trips.record_trip(conn, {"trip_id": "ORD-1", "event": "stop", "ts": T0 + 1},
                          "rule:trip_stop", T0 + 1)
    _sent(db, "off-a", 1, T0)
    _sent(db, "off-a", 2, T0)
    size = ledger_log.size(db.conn)
    assert office_feed.record_ack(db.conn, "off-a", "ORD-1", 2, T0 + 5) == 2
    assert office_feed.record_ack(db.conn, "off-a", "ORD-1", 2, T0 + 6) == 0  # a repeat
    assert ledger_log.size(db.conn) == size + 1
    e = entries.decode(ledger_log.entry(db.conn, size))
    assert isinstance(e, entries.Decision) and e.decision == "office_ack"
    second = rows.deliveries(db.conn, "ORD-1")[1]
    assert second["acked_ms"] == T0 + 5
    record = db.conn.execute("SELECT record FROM office_outbox WHERE office_seq=2").fetchone()[0]
    assert e.body["record_sha256"] == hashlib.sha256(record.encode()).hexdigest()
    assert [d["state"] for d in office_feed.trip_deliveries(db.conn, "ORD-1")] == ["acked"] * 2


def test_ack_of_a_record_never_sent_or_unknown_changes_nothing(db: Store) -> None:
    _add(db)
    _trip(db, None)
    assert office_feed.record_ack(db.conn, "off-a", "ORD-1", 1, T0) == 0  # not sent yet
    assert office_feed.record_ack(db.conn, "off-a", "NO-SUCH", 1, T0) == 0


@pytest.mark.parametrize("data", [b"", b"[1]", b'{"trip_id": "T"}', b'{"trip_id": 5, '
                                  b'"version": 1}', b'{"trip_id": "T", "version": 0}',
                                  b'{"trip_id": "T", "version": true}', b"\xff",
                                  b'{"trip_id": "' + b"x" * 600 + b'", "version": 1}'])
def test_ack_malformed_is_refused_with_a_reason(data: bytes) -> None:
    with pytest.raises(RecordError):
        parse_ack(data)


def test_retry_delay_doubles_from_the_first_to_the_cap() -> None:
    s = office_feed.FeedSettings(retry_first_ms=1000, retry_max_ms=10_000)
    assert [office_feed.retry_delay_ms(n, s) for n in range(0, 7)] == \
        [0, 1000, 2000, 4000, 8000, 10_000, 10_000]
    assert office_feed.retry_delay_ms(500, s) == 10_000


def test_retry_due_rows_wait_for_their_back_off(db: Store) -> None:
    _add(db)
    _trip(db, None)
    _sent(db, "off-a", 1, T0)
    assert rows.due(db.conn, T0 + 1999) == []
    assert [r["office_seq"] for r in rows.due(db.conn, T0 + 2000)] == [1]


def test_office_unreachable_raised_when_pending_too_long_and_cleared_by_the_ack(
        db: Store) -> None:
    settings = office_feed.FeedSettings(unreachable_after_ms=60_000)
    _add(db)
    _trip(db, None)
    _sent(db, "off-a", 1, T0)
    assert office_feed.check_reachability(db.conn, T0 + 60_000, settings) == []
    [raised] = office_feed.check_reachability(db.conn, T0 + 60_001, settings)
    assert (raised.code, raised.device_id, raised.active) == ("office_unreachable", "off-a",
                                                              True)
    assert office_feed.check_reachability(db.conn, T0 + 70_000, settings) == []  # still so
    office_feed.record_ack(db.conn, "off-a", "ORD-1", 1, T0 + 80_000)
    [cleared] = office_feed.check_reachability(db.conn, T0 + 80_001, settings)
    assert cleared.active is False
    status = office_feed.office_status(db.conn, T0 + 90_000)[0]
    assert (status["sent"], status["acked"], status["pending"]) == (1, 1, 0)


def test_office_removed_clears_its_office_unreachable(db: Store) -> None:
    settings = office_feed.FeedSettings(unreachable_after_ms=1)
    _add(db)
    _trip(db, None)
    assert len(office_feed.check_reachability(db.conn, T0 + 10, settings)) == 1
    office_feed.remove_office(db, "off-a", actor="test", reason="closed", time_ms=T0 + 20)
    assert not [a for a in alerts.list_alerts(db) if a["code"] == "office_unreachable"
                and a["active"]]


def test_office_feed_refuses_to_sign_with_a_key_file_not_pinned(db: Store, db_path: Path,
                                                                 tmp_path: Path) -> None:
    _add(db)
    _trip(db, None)
    checkpoint.create(db.conn, _signer(db_path), T0)  # pins the log key
    publisher = OfficePublisher(db_path=db_path, site=SITE, broker=BrokerSettings())
    try:
        pinned = publisher._executor.submit(publisher._due).result()
        assert [seq for _, seq, _ in pinned] == [1]
        checkpoint.key_path(db_path).unlink()
        keys.load_or_create_key(checkpoint.key_path(db_path))  # another key in its place
        _trip(db, None, trip_id="ORD-2")
        with pytest.raises(LedgerError, match="not the log key pinned"):
            publisher._executor.submit(publisher._due).result()
    finally:
        publisher.close()


def test_office_add_refuses_a_device_id_a_bad_id_and_no_destination(
        db: Store, device: dict[str, Any]) -> None:
    with pytest.raises(Conflict):
        _add(db, "wb-1")
    with pytest.raises(Conflict):
        _add(db, FEED_USER)
    with pytest.raises(InvalidInput):
        _add(db, "bad id")
    with pytest.raises(InvalidInput):
        _add(db, "off-c", ())
    _add(db)
    with pytest.raises(Conflict):
        _add(db)


def test_office_removed_gets_nothing_more_and_loses_its_login(db: Store) -> None:
    _add(db)
    office_feed.remove_office(db, "off-a", actor="test", reason="merged", time_ms=T0)
    assert _trip(db, None) == []
    users = {a.user for a in broker_auth.accounts(db, site=SITE)}
    assert "off-a" not in users and FEED_USER not in users


def test_office_login_reads_its_trips_and_writes_its_acks_only(db: Store,
                                                              device: dict[str, Any]) -> None:
    password = _add(db)
    accounts = {a.user: a for a in broker_auth.accounts(db, site=SITE)}
    office = accounts["off-a"]
    assert office.rules == (f"topic read pw/v1/{SITE}/off-a/trip",
                            f"topic write pw/v1/{SITE}/off-a/tripack")
    assert accounts[FEED_USER].rules == (f"topic write pw/v1/{SITE}/+/trip",
                                         f"topic read pw/v1/{SITE}/+/tripack")
    _, _, iterations, salt, _ = office.password_hash.split("$")
    assert office.password_hash == registry.mosquitto_hash(
        password, salt=base64.b64decode(salt), iterations=int(iterations))
    assert not any("wb-1" in rule for rule in office.rules)


def test_office_api_provisions_lists_shows_deliveries_and_removes(db: Store,
                                                                  db_path: Path) -> None:
    client = TestClient(create_app(db_path=db_path, site=SITE))
    admin = {"Authorization": "Bearer " + auth.create_token(db, name="a", role="admin")}
    operator = {"Authorization": "Bearer " + auth.create_token(db, name="o", role="operator")}
    body = {"office_id": "off-a", "name": "inland", "destinations": ["dest-a"]}
    assert client.post("/api/v1/offices", json=body, headers=operator).status_code == 403
    r = client.post("/api/v1/offices", json=body, headers=admin)
    assert r.status_code == 201, r.text
    made = r.json()
    assert note.Verifier.parse(made["log_key"]) == _signer(db_path).verifier
    assert made["trip_topic"] == f"pw/v1/{SITE}/off-a/trip" and len(made["password"]) > 20
    assert client.post("/api/v1/offices", json=body, headers=admin).status_code == 409
    _trip(db, None)
    [office] = client.get("/api/v1/offices", headers=operator).json()
    assert (office["office_id"], office["queued"], office["sent"], office["pending"]) == \
        ("off-a", 1, 0, 1)
    [d] = client.get("/api/v1/trips/ORD-1/deliveries", headers=operator).json()
    assert (d["office_id"], d["version"], d["state"]) == ("off-a", 1, "queued")
    gone = client.post("/api/v1/offices/off-a/remove", json={"reason": "closed"},
                       headers=admin)
    assert gone.status_code == 200, gone.text
    assert client.get("/api/v1/offices", headers=operator).json() == []
    assert client.post("/api/v1/offices/off-a/remove", json={"reason": "again"},
                       headers=admin).status_code == 404
