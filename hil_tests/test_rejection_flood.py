"""A leaked broker login floods the controller with forged messages: the store grows by a
bounded amount, every refusal is counted, the ledger gets signed summaries, and a real
weighbridge agent's trucks all arrive exactly once meanwhile.

Real Mosquitto, real controller, real firmware under micropython. The attacker holds the
broker login of a registered device ("wb-flood") but not its signing key, and a second
login that may write under the whole site (for unregistered device ids).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from controller.ingest.rejects import DEFAULT_LIMITS
from controller.ledger import entries
from delivery import assert_exactly_once, send_trucks, start_weighbridge
from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

WINDOW_S = 4  # the controller's counting window for this test (an hour in service)
K = DEFAULT_LIMITS.keep_per_bucket
# the README's bound, per bucket and window: K kept rejections of at most FULL_BYTES each
# (measured worst case, texts clipped: 1,188 B with the ledger entry and its tree nodes),
# the bucket's row and one summary entry (measured 389 B)
FULL_BYTES, BUCKET_BYTES, SUMMARY_BYTES = 1536, 256, 512
LEGIT_BYTES = 4096  # allowance per message the real agent had accepted meanwhile
PAGE_SLACK = 256 * 1024  # each of ~15 growing b-trees may take a few fresh 4 KB pages
TRUCKS = 6
FLOOD_S, AT_LEAST = 10.0, 20_000


class Flooder:
    """Publish at QoS 1 as fast as the broker takes it, counting PUBACKs per kind."""

    def __init__(self, rig: Rig, client_id: str, login: tuple[str, str]) -> None:
        self.client = rig.mqtt_client(client_id, login)  # over TLS when the rig runs it
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.sent: Counter[str] = Counter()
        self.acked = 0
        self.cond = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", rig.broker.port)
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self.cond:
            self.acked += 1
            self.cond.notify_all()

    def send(self, topic: str, payload: bytes, kind: str) -> None:
        with self.cond:
            # at most 2,000 unacknowledged: the flood runs at the broker's pace
            self.cond.wait_for(lambda: self.sent.total() - self.acked < 2000, 30)
        # outside our lock: paho calls on_publish holding its own
        self.client.publish(topic, payload, qos=1)
        self.sent[kind] += 1

    def finish(self) -> Counter[str]:
        """Wait for the broker to have acknowledged everything; what was sent, by kind."""
        with self.cond:
            assert self.cond.wait_for(lambda: self.acked == self.sent.total(), 60)
        self.client.loop_stop()
        self.client.disconnect()
        return self.sent


def _store_bytes(rig: Rig) -> int:
    """Main file plus WAL, after a full checkpoint has moved the WAL into the main file."""
    def checkpointed() -> bool:
        with contextlib.closing(sqlite3.connect(rig.db_path, timeout=10)) as c:
            busy = int(c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
        return busy == 0
    wait_until(checkpointed, 20, what="a full WAL checkpoint")
    wal = Path(f"{rig.db_path}-wal")
    return rig.db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _query(rig: Rig, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(rig.db_path, timeout=10)) as c:
        return c.execute(sql, args).fetchall()


def _payloads(rig: Rig, key_id: str) -> dict[str, list[tuple[str, bytes]]]:
    """What the attacker sends: forged envelopes, garbage, and 12 KB forged envelopes
    (under the envelope's 16 KB and the broker's packet limit), varied so none repeat."""
    evt = topics.topic(rig.site, "wb-flood", "evt")
    tele = topics.topic(rig.site, "wb-flood", "tele")
    fake = b"\x5a" * 32  # not wb-flood's secret
    forged = [(evt, envelope.seal(fake, key_id, evt, envelope.make(
        "wb-flood", 1, i + 1, 1764072000000 + i, "weighing",
        {"plate": "辽B00000", "gross_kg": 40000 + i}))) for i in range(500)]
    big = [(tele, b'{"v":1,"pad":"' + b"x" * 12_000 + b"%05d" % i + b'"}\n' + key_id.encode()
            + b":" + b"0" * 64) for i in range(50)]
    garbage = [(evt, b"\xff\xfe garbage %d" % i) for i in range(500)]
    ghosts = [(topics.topic(rig.site, f"ghost-{i % 997}", "evt"), forged[i % 500][1])
              for i in range(500)]
    return {"forged": forged, "big": big, "garbage": garbage, "ghost": ghosts}


@pytest.mark.timeout(120)
def test_forged_flood_costs_bounded_space_and_every_truck_arrives(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTWATCH_REJECTION_WINDOW_S", str(WINDOW_S))
    rig.stop_controller()
    rig.start_controller()  # with the short window; its counts live in the store
    agent = start_weighbridge(rig)
    rig.provision("wb-flood")  # registered, its broker login leaked, its key did not
    key_id = str(_query(rig, "SELECT key_id FROM devices WHERE device_id='wb-flood'")[0][0])
    payloads = _payloads(rig, key_id)
    flood = Flooder(rig, "wb-flood", rig.credentials("wb-flood"))
    ghost = Flooder(rig, "hil-tester", rig.test_account())
    size_before = _store_bytes(rig)
    ledger_before = _query(rig, "SELECT coalesce(max(idx), -1) + 1 FROM ledger_entries")[0][0]

    send_trucks(agent, 0, TRUCKS)
    started = time.monotonic()
    i = 0
    while True:
        elapsed = time.monotonic() - started
        if (elapsed >= FLOOD_S and i >= AT_LEAST) or elapsed >= 3 * FLOOD_S:
            break
        if i % 10 == 9:  # one in ten from the site-wide login, at unregistered ids
            ghost.send(*payloads["ghost"][i % 500], "ghost")
        elif i % 100 == 0:
            flood.send(*payloads["big"][i // 100 % 50], "big")
        elif i % 3 == 0:
            flood.send(*payloads["garbage"][i % 500], "garbage")
        else:
            flood.send(*payloads["forged"][i % 500], "forged")
        i += 1
    sent = flood.finish() + ghost.finish()
    flood_s = time.monotonic() - started
    total_sent = sum(sent.values())
    assert total_sent >= AT_LEAST

    assert_exactly_once(rig, agent, TRUCKS)  # the flood did not cost the agent a truck

    def counted() -> dict[tuple[str, str], int]:
        return {(d, r): int(n) for d, r, n in _query(
            rig, "SELECT device_id, reason, sum(total) FROM rejection_buckets WHERE "
            "device_id IN ('wb-flood', '*') GROUP BY 1, 2")}

    def drained() -> bool:
        live = rig.get("/api/v1/ingest/stats")["live"]
        done = sum(counted().values()) + int(live["overflow_dropped"])
        return int(live["queue_depth"]) == 0 and done >= total_sent
    wait_until(drained, 60, what="the controller to count the whole flood")
    drained_s = time.monotonic() - started
    dropped = rig.get("/api/v1/ingest/stats")["live"]["overflow_dropped"]
    got = counted()
    want = {("wb-flood", "bad_signature"): sent["forged"] + sent["big"],
            ("wb-flood", "no_signature"): sent["garbage"], ("*", "unknown_device"): sent["ghost"]}
    assert set(got) == set(want)
    # every message the broker took is counted, or was dropped by the full queue (counted
    # there: the controller's queue is the only place a message may be dropped)
    assert sum(want.values()) - dropped <= sum(got.values()) <= sum(want.values())
    if dropped == 0:
        assert got == want

    # a restart now: the counts are in the store, and no summary may be made twice
    rig.stop_controller()
    rig.start_controller()

    # each closed window's buckets that counted more than they kept get one summary
    def buckets() -> list[tuple[Any, ...]]:
        return _query(rig, "SELECT device_id, reason, window_ms, kept, total, bytes, first_ms, "
                      "last_ms, summary_idx FROM rejection_buckets WHERE device_id IN "
                      "('wb-flood', '*') ORDER BY window_ms")
    last_window = max(b[2] for b in buckets())
    wait_until(lambda: all(b[8] is not None for b in buckets() if b[4] > b[3]) and
               time.time() * 1000 >= last_window + WINDOW_S * 1000, 30,
               what="the summaries of the flood's windows")
    rows = buckets()
    windows = {b[2] for b in rows}
    assert len(rows) <= 3 * len(windows)  # 3 buckets per window: one per (sender, reason)
    assert all(b[3] <= K for b in rows)
    for dev, reason, window, kept, total, nbytes, first, last, idx in rows:
        if total == kept:
            assert idx is None
            continue
        [(data,)] = _query(rig, "SELECT entry FROM ledger_entries WHERE idx=?", idx)
        e = entries.decode(bytes(data))
        assert isinstance(e, entries.Decision) and e.decision == "rejection_summary"
        assert e.body == {"device_id": dev, "reason": reason, "window_start_ms": window,
                          "window_s": WINDOW_S, "total": total, "bytes": nbytes,
                          "kept_in_full": kept, "counted_only": total - kept,
                          "first_ms": first, "last_ms": last}

    # the ledger: the kept rejections and the summaries of the flood, nothing more
    kinds: Counter[str] = Counter()
    for subkind, device_id, data in _query(
            rig, "SELECT subkind, device_id, entry FROM ledger_entries WHERE idx >= ?",
            ledger_before):
        if subkind == "rejection":
            body = entries.decode(bytes(data)).body  # type: ignore[union-attr]
            flood_entry = body["device_id"] == "wb-flood" or body["reason"] == "unknown_device"
            kinds["flood" if flood_entry else "other rejection"] += 1
        elif subkind == "rejection_summary":
            kinds["summary"] += 1
        else:
            kinds["device" if device_id is not None else subkind] += 1
    kept = sum(b[3] for b in rows)
    summaries = sum(1 for b in rows if b[4] > b[3])
    assert kinds["flood"] == kept <= K * len(rows)
    assert kinds["summary"] == summaries <= len(rows)

    # the store: bounded by the buckets the flood touched, whatever its size
    growth = _store_bytes(rig) - size_before
    legit = sum(n for k, n in kinds.items() if k not in ("flood", "summary"))
    bound = (len(rows) * (K * FULL_BYTES + BUCKET_BYTES + SUMMARY_BYTES)
             + legit * LEGIT_BYTES + PAGE_SLACK)
    print(f"flood: {total_sent} messages ({dict(sent)}) in {flood_s:.1f} s "
          f"({total_sent / flood_s:.0f} msg/s sent), all counted after {drained_s:.1f} s "
          f"({total_sent / drained_s:.0f} msg/s), {dropped} dropped by the full queue; "
          f"{len(windows)} windows, {len(rows)} buckets, {kept} kept in full, "
          f"{summaries} summaries; ledger +{sum(kinds.values())} ({dict(kinds)}); "
          f"store +{growth} B, bound {bound} B")
    assert growth <= bound
    assert growth < total_sent * 100  # vs ~800 B a message when every refusal was kept
