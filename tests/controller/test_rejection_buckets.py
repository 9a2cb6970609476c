"""Refused traffic costs bounded space: the first few per (device, reason, window) in full,
the rest counted, and one signed summary per closed bucket in the ledger, made once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from controller import auth, registry
from controller.api.app import create_app
from controller.ingest import service as service_mod
from controller.ingest.flood_bench import KEEP_ALL, forged_rate
from controller.ingest.rejects import DEFAULT_LIMITS, SUMMARY, RejectionLimits, summarize
from controller.ingest.verify import Received, Rejected, check_message
from controller.ingest.writer import TEXT_CHARS, commit_batch
from controller.ledger import bundle, checkpoint, entries
from controller.storage import Store, open_store, transaction, views
from controller.storage import ledger_log as ledger_store
from controller.storage import rejections as buckets_store
from ctl_helpers import SITE, signed
from tools.cli import app

HOUR_MS = 3_600_000
T0 = 1764072000000  # a window start (a multiple of an hour)
CLOSED = T0 + HOUR_MS + 60_000  # its end plus the grace for messages still queued


def _forged(device: dict[str, Any], i: int, received_ms: int = T0 + 500) -> Received:
    """A message with the device's topic and shape but a signature made without its key."""
    msg: Received = signed(device, seq=i + 1, secret=b"not the device key",
                           received_ms=received_ms)
    return msg


def _garbage(device_id: str, i: int, received_ms: int = T0 + 500) -> Received:
    return Received(f"pw/v1/{SITE}/{device_id}/evt", b"\x00garbage %d" % i, received_ms)


def _commit(db: Store, msgs: list[Received], limits: RejectionLimits = DEFAULT_LIMITS,
            batch: int = 100) -> None:
    keys = registry.secrets_by_device(db)
    for i in range(0, len(msgs), batch):
        commit_batch(db.conn, [check_message(m, site=SITE, keys=keys)
                               for m in msgs[i:i + batch]], limits=limits)


def _ledger_decisions(db: Store, kind: str) -> list[dict[str, Any]]:
    out = []
    for _, data, _ in ledger_store.iter_entries(db.conn):
        e = entries.decode(data)
        if isinstance(e, entries.Decision) and e.decision == kind:
            out.append(e.body)
    return out


def test_a_flood_keeps_five_in_full_and_counts_the_rest(db: Store,
                                                        device: dict[str, Any]) -> None:
    msgs = [_forged(device, i) for i in range(1000)] + [_garbage("wb-1", i) for i in range(500)]
    _commit(db, msgs)
    assert db.db["rejections"].count == 10  # 5 bad_signature + 5 no_signature
    assert len(_ledger_decisions(db, "rejection")) == 10
    rows = {(b["device_id"], b["reason"]): b for b in buckets_store.buckets(db)}
    assert set(rows) == {("wb-1", "bad_signature"), ("wb-1", "no_signature")}
    sig = rows[("wb-1", "bad_signature")]
    assert (sig["kept"], sig["total"], sig["window_ms"], sig["window_s"]) == (5, 1000, T0, 3600)
    assert sig["bytes"] == sum(len(m.payload) for m in msgs[:1000])
    assert views.rejected_by_reason(db) == {"bad_signature": 1000, "no_signature": 500}


def test_each_batch_writes_one_row_per_bucket_not_per_message(db: Store,
                                                              device: dict[str, Any]) -> None:
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    _commit(db, [_forged(device, i) for i in range(300)], batch=300)
    db.conn.set_trace_callback(None)
    upserts = [s for s in statements if s.startswith("INSERT INTO rejection_buckets")]
    assert len(upserts) == 1


def test_unregistered_senders_share_one_bucket(db: Store, device: dict[str, Any]) -> None:
    msgs = [_garbage(f"ghost-{i}", i) for i in range(400)]
    msgs.append(Received(f"pw/v1/{SITE}/bad id/evt", b"x", T0))  # not even a valid topic
    _commit(db, msgs)
    rows = [(b["device_id"], b["reason"], b["kept"], b["total"])
            for b in buckets_store.buckets(db)]
    assert sorted(rows) == [("*", "bad_topic", 1, 1), ("*", "unknown_device", 5, 400)]
    assert db.db["rejections"].count == 6


def test_a_window_keeps_at_most_its_cap_in_full_across_buckets(db: Store,
                                                               device: dict[str, Any]) -> None:
    registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge", driver={})
    limits = RejectionLimits(keep_per_bucket=5, keep_per_window=7)
    msgs = [_garbage(dev, i) for dev in ("wb-1", "wb-2", "ghost") for i in range(10)]
    _commit(db, msgs, limits)
    assert db.db["rejections"].count == 7
    assert sum(b["total"] for b in buckets_store.buckets(db)) == 30
    # the next window starts afresh
    _commit(db, [_garbage("wb-1", 0, T0 + HOUR_MS)], limits)
    assert db.db["rejections"].count == 8


def test_kept_rejections_clip_what_the_sender_chose(db: Store, device: dict[str, Any]) -> None:
    wire = b'{"v":1}\n' + b"k" * 9000 + b":" + b"0" * 64  # a 9 KB key id, quoted in the detail
    _commit(db, [Received(f"pw/v1/{SITE}/wb-1/evt", wire, T0)])
    [row] = views.rejections(db)
    assert row["reason"] == "unknown_key" and len(row["detail"]) == TEXT_CHARS
    assert row["size"] == len(wire) and len(row["excerpt_hex"]) == 256


def test_closed_windows_get_one_summary_each_once(db_path: Path, db: Store,
                                                  device: dict[str, Any]) -> None:
    _commit(db, [_forged(device, i) for i in range(20)] + [_garbage("wb-1", 0)]
            + [_garbage(f"ghost-{i}", i) for i in range(8)])
    with transaction(db.conn):
        assert summarize(db.conn, T0 + HOUR_MS - 1) == 0  # the window is still open
        assert summarize(db.conn, CLOSED - 1) == 0  # ended, but some may still be queued
    with transaction(db.conn):
        assert summarize(db.conn, CLOSED) == 2  # no_signature kept all: no summary
    size = ledger_store.size(db.conn)
    db.close()
    again = open_store(db_path)  # a restart: the marks are in the store
    with transaction(again.conn):
        assert summarize(again.conn, T0 + 2 * HOUR_MS) == 0
    assert ledger_store.size(again.conn) == size
    summaries = sorted(_ledger_decisions(again, SUMMARY), key=lambda b: str(b["device_id"]))
    assert summaries == [
        {"device_id": "*", "reason": "unknown_device", "window_start_ms": T0,
         "window_s": 3600, "total": 8, "bytes": summaries[0]["bytes"], "kept_in_full": 5,
         "counted_only": 3, "first_ms": T0 + 500, "last_ms": T0 + 500},
        {"device_id": "wb-1", "reason": "bad_signature", "window_start_ms": T0,
         "window_s": 3600, "total": 20, "bytes": summaries[1]["bytes"], "kept_in_full": 5,
         "counted_only": 15, "first_ms": T0 + 500, "last_ms": T0 + 500}]
    assert summaries[0]["bytes"] == sum(len(b"\x00garbage %d" % i) for i in range(8))
    marked = [b["summary_idx"] for b in buckets_store.buckets(again) if b["total"] > b["kept"]]
    assert all(isinstance(i, int) for i in marked) and len(marked) == 2
    again.close()


def test_summaries_verify_in_an_exported_bundle(db_path: Path, db: Store,
                                                device: dict[str, Any], tmp_path: Path) -> None:
    _commit(db, [_forged(device, i) for i in range(50)])
    with transaction(db.conn):
        assert summarize(db.conn, CLOSED) == 1
    signer = checkpoint.log_signer(db_path, checkpoint.origin_for(SITE))
    checkpoint.create(db.conn, signer, T0 + HOUR_MS)
    out = tmp_path / "bundle.json"
    bundle.export(db_path, out)
    report = bundle.verify(out, log_key=signer.verifier.vkey)
    assert report.ok, report.failures
    assert report.entries == ledger_store.size(db.conn)


def test_a_schema_4_store_turns_its_rejections_into_full_buckets(
        db_path: Path, db: Store, device: dict[str, Any]) -> None:
    _commit(db, [_forged(device, i) for i in range(3)])
    db.conn.execute("DROP TABLE rejection_buckets")  # as a store from before schema 5
    db.conn.execute("PRAGMA user_version=4")
    db.close()
    again = open_store(db_path)
    rows = buckets_store.buckets(again)
    assert [(b["device_id"], b["reason"], b["kept"], b["total"]) for b in rows] == [
        ("wb-1", "bad_signature", 3, 3)]
    assert views.rejected_by_reason(again) == {"bad_signature": 3}
    with transaction(again.conn):
        assert summarize(again.conn, T0 + 10 * HOUR_MS) == 0  # all kept in full already
    again.close()


def test_api_shows_counts_per_device_reason_and_window(db_path: Path, db: Store,
                                                       device: dict[str, Any]) -> None:
    _commit(db, [_forged(device, i) for i in range(30)] + [_garbage("ghost", 0)])
    client = TestClient(create_app(db_path=db_path, site=SITE))
    h = {"Authorization": "Bearer " + auth.create_token(db, name="ops", role="operator")}
    rows = client.get("/api/v1/ingest/rejection-counts", headers=h).json()
    assert sorted((r["device_id"], r["reason"], r["total"], r["kept"]) for r in rows) == [
        ("*", "unknown_device", 1, 1), ("wb-1", "bad_signature", 30, 5)]
    one = client.get("/api/v1/ingest/rejection-counts", headers=h,
                     params={"device_id": "wb-1", "since_ms": T0}).json()
    assert [(r["reason"], r["window_ms"], r["summary_idx"]) for r in one] == [
        ("bad_signature", T0, None)]
    assert client.get("/api/v1/ingest/rejection-counts", headers=h,
                      params={"since_ms": T0 + HOUR_MS}).json() == []
    stats = client.get("/api/v1/ingest/stats", headers=h).json()
    assert stats["rejected_by_reason"] == {"bad_signature": 30, "unknown_device": 1}


def test_cli_lists_counts_per_device_reason_and_window(db_path: Path, db: Store,
                                                       device: dict[str, Any]) -> None:
    _commit(db, [_forged(device, i) for i in range(12)])
    with transaction(db.conn):
        summarize(db.conn, CLOSED)
    r = CliRunner().invoke(app, ["rejections", "--device", "wb-1", "--db", str(db_path)],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    [line] = [ln for ln in r.output.splitlines() if "bad_signature" in ln]
    assert "wb-1" in line and " 12 " in line and " 5 " in line and "ledger" in line
    empty = CliRunner().invoke(app, ["rejections", "--reason", "stale", "--db", str(db_path)],
                               env={"COLUMNS": "200"})
    assert empty.exit_code == 0 and "bad_signature" not in empty.output


def test_flood_bench_counts_a_flood_in_bounded_space() -> None:
    bounded = forged_rate(3000)
    kept = forged_rate(3000, limits=KEEP_ALL)
    assert bounded["messages"] == kept["messages"] == 3000
    assert bounded["per_s"] > 0 and kept["per_s"] > 0
    # every refusal kept costs ~0.8 KB each; bounded, the store is the empty schema and one
    # bucket with its 5 kept refusals
    assert kept["store_bytes"] - bounded["store_bytes"] > 3000 * 500


def test_made_up_ids_do_not_grow_the_ingest_memory(db_path: Path, db: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_mod, "UNKNOWN_IDS_MAX", 50)
    svc = service_mod.IngestService(db_path=db_path, site=SITE,
                                    broker=service_mod.BrokerSettings())
    try:
        for i in range(500):
            v = svc._verify(_garbage(f"ghost-{i}", i))
            assert isinstance(v, Rejected) and v.reason == "unknown_device"
            assert len(svc._unknown_checked) <= 50
        # one provisioned meanwhile is still found, after the set was forgotten
        dev = registry.provision(db, device_id="ghost-3", site=SITE, kind="weighbridge",
                                 driver={})
        v = svc._verify(_forged(dev, 0))
        assert isinstance(v, Rejected) and v.reason == "bad_signature"  # looked up: known
    finally:
        svc.close()


def test_a_message_committed_after_its_window_was_summed_up_counts_in_the_open_one(
        db: Store, device: dict[str, Any]) -> None:
    _commit(db, [_forged(device, i) for i in range(20)])
    with transaction(db.conn):
        assert summarize(db.conn, CLOSED) == 1
    _commit(db, [_forged(device, i, received_ms=T0 + 900) for i in range(3)])  # late, queued
    rows = {b["window_ms"]: b for b in buckets_store.buckets(db)}
    assert (rows[T0]["total"], rows[T0]["kept"]) == (20, 5)  # the summary still holds
    [late] = [b for w, b in rows.items() if w != T0]
    assert late["window_ms"] > T0 and (late["total"], late["first_ms"]) == (3, T0 + 900)
    assert views.rejected_by_reason(db) == {"bad_signature": 23}
