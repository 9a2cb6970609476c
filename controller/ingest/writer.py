"""Commit one batch of verdicts in a single SQLite transaction.

Custody events (``evt``) are deduplicated on (device, seq): the same bytes again
are a ``duplicate`` (QoS 1 redelivery, a resend after reboot, or a replay); other
bytes under a stored seq are a ``seq_conflict``. Telemetry and state carry a
(boot, seq) freshness key instead, so a replayed old health or birth is ``stale``.
After the commit each device's contiguous watermark ("committed up to seq N") is
what the ingest acknowledges, so the edge may drop exactly what is durable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from controller import ledger
from controller.ingest.verify import Accepted, Rejected, Verdict

log = logging.getLogger("portwatch.ingest")
EXCERPT_BYTES = 128


@dataclass(slots=True)
class BatchResult:
    """What one commit did; ``watermarks`` are the devices to acknowledge."""

    stored: int = 0
    telemetry: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)
    births: list[str] = field(default_factory=list)


class _Batch:
    """Rows gathered from one batch before they are written together."""

    def __init__(self, conn: sqlite3.Connection, devices: dict[str, dict[str, Any]]) -> None:
        self.conn = conn
        self.devices = devices
        self.messages: list[tuple[Any, ...]] = []
        self.weighings: list[tuple[Any, ...]] = []
        self.alarms: list[tuple[Any, ...]] = []
        self.health: list[tuple[Any, ...]] = []
        self.rejections: list[tuple[Any, ...]] = []
        self.lost: list[tuple[Any, ...]] = []
        self.ledger: list[bytes] = []  # every accepted message and every rejection, in order
        self.seen: dict[tuple[str, int], str] = {}
        self.touched: set[str] = set()
        self.result = BatchResult()

    def reject(self, v: Rejected | Accepted, reason: str, detail: str) -> None:
        dev = v.device_id
        self.result.rejected[reason] = self.result.rejected.get(reason, 0) + 1
        level = logging.INFO if reason == "duplicate" else logging.WARNING
        log.log(level, "rejected %s from %s on %s: %s", reason, dev, v.msg.topic, detail)
        self.rejections.append((v.msg.received_ms, v.msg.topic, dev, reason, detail,
                                len(v.msg.payload), v.msg.payload[:EXCERPT_BYTES].hex()))
        self.ledger.append(ledger.decision(
            kind="rejection", actor="controller", time_ms=v.msg.received_ms,
            body={"reason": reason, "detail": detail, "topic": v.msg.topic, "device_id": dev,
                  "size": len(v.msg.payload),
                  "sha256": hashlib.sha256(v.msg.payload).hexdigest()}))

    def add_event(self, v: Accepted) -> None:
        f = v.fields
        key = (v.device_id, f["seq"])
        digest = hashlib.sha256(v.msg.payload).hexdigest()
        stored = self.seen.get(key)
        if stored is None:
            row = self.conn.execute("SELECT sha256 FROM messages WHERE device_id=? AND seq=?",
                                    key).fetchone()
            stored = row[0] if row else None
        self.touched.add(v.device_id)
        if stored is not None:
            if stored == digest:
                self.reject(v, "duplicate", f"seq {f['seq']} is already stored")
            else:
                self.reject(v, "seq_conflict", f"seq {f['seq']} is stored with other content")
            return
        self.seen[key] = digest
        received = v.msg.received_ms
        self.messages.append((v.device_id, f["seq"], f["boot"], f["kind"], f["ts"], received,
                              v.msg.topic, v.msg.payload, digest))
        body = f["body"]
        if f["kind"] == "weighing":
            self.weighings.append((v.device_id, f["seq"], body["plate"], body["gross_kg"],
                                   body["tare_kg"], body["net_kg"], body["division_kg"],
                                   body["stable_ms"], body["arrived_ts"], f["ts"], received))
        elif f["kind"] == "gap":
            self.lost.append((v.device_id, f["seq"], f["seq"], body["reason"], v.device_id,
                              received))
        elif f["kind"] == "alarm":
            self.alarms.append((v.device_id, f["seq"], body["alarm"], body["state"],
                                json.dumps(body.get("detail", {}), ensure_ascii=False),
                                f["ts"], received))
        self.result.stored += 1
        self.record(v)
        self.seen_device(v)

    def record(self, v: Accepted) -> None:
        """The accepted message, exact bytes and receipt, for the ledger."""
        self.ledger.append(ledger.device_message(
            device_id=v.device_id, channel=v.channel, topic=v.msg.topic, seq=v.fields["seq"],
            received_ms=v.msg.received_ms, wire=v.msg.payload))

    def seen_device(self, v: Accepted) -> None:
        dev = self.devices[v.device_id]
        dev["last_seen_ms"] = max(dev.get("last_seen_ms") or 0, v.msg.received_ms)
        if dev.get("status") in ("never", "offline"):
            dev["status"] = "online"

    def add_telemetry(self, v: Accepted) -> None:
        f = v.fields
        dev = self.devices[v.device_id]
        if (f["boot"], f["seq"]) <= (dev["tele_boot"], dev["tele_seq"]):
            self.reject(v, "stale", f"telemetry (boot {f['boot']}, seq {f['seq']}) is not newer "
                        f"than (boot {dev['tele_boot']}, seq {dev['tele_seq']})")
            return
        body = f["body"]
        dev.update(tele_boot=f["boot"], tele_seq=f["seq"], health_ms=v.msg.received_ms,
                   health_json=json.dumps(body, ensure_ascii=False), fw_version=body["fw"],
                   clock_offset_ms=f["ts"] - v.msg.received_ms)
        self.health.append((v.device_id, f["boot"], f["seq"], f["ts"], v.msg.received_ms,
                            dev["health_json"]))
        self.result.telemetry += 1
        self.record(v)
        self.seen_device(v)

    def add_state(self, v: Accepted) -> None:
        """Birth and death carry (boot, connection seq), like Sparkplug's bdSeq."""
        f = v.fields
        dev = self.devices[v.device_id]
        key, last = (f["boot"], f["seq"]), (dev["boot"], dev["state_seq"])
        if f["kind"] == "birth":
            if key == last and dev["status"] == "online":
                return  # the retained birth delivered again: nothing new
            if key <= last:
                self.reject(v, "stale", f"birth {key} is not newer than {last}")
                return
            dev.update(boot=key[0], state_seq=key[1], status="online",
                       fw_version=f["body"]["fw"])
            self.result.births.append(v.device_id)
            self.seen_device(v)
        else:
            if key < last:
                self.reject(v, "stale", f"death {key} is older than {last}")
                return
            dev.update(boot=key[0], state_seq=key[1], status="offline")
        self.result.telemetry += 1
        self.record(v)

    def write(self, with_ledger: bool) -> None:
        c = self.conn
        if with_ledger and self.ledger:
            ledger.append(c, self.ledger)  # same transaction: store and log never disagree
        c.executemany("INSERT INTO messages VALUES (?,?,?,?,?,?,?,?,?)", self.messages)
        c.executemany("INSERT INTO weighings VALUES (?,?,?,?,?,?,?,?,?,?,?)", self.weighings)
        c.executemany("INSERT INTO alarms VALUES (?,?,?,?,?,?,?)", self.alarms)
        c.executemany("INSERT INTO health (device_id, boot, seq, device_ts, received_ms, "
                      "body_json) VALUES (?,?,?,?,?,?)", self.health)
        c.executemany("INSERT INTO lost_ranges (device_id, first_seq, last_seq, reason, "
                      "declared_by, declared_ms) VALUES (?,?,?,?,?,?)", self.lost)
        c.executemany("INSERT INTO rejections (received_ms, topic, device_id, reason, detail, "
                      "size, excerpt_hex) VALUES (?,?,?,?,?,?,?)", self.rejections)
        for dev_id in self.touched:
            self.devices[dev_id]["committed_seq"] = _advance(c, dev_id,
                                                             self.devices[dev_id]["committed_seq"])
            self.result.watermarks[dev_id] = self.devices[dev_id]["committed_seq"]
        for dev in self.devices.values():
            c.execute(
                "UPDATE devices SET status=?, boot=?, state_seq=?, last_seen_ms=?, fw_version=?, "
                "committed_seq=?, tele_boot=?, tele_seq=?, health_json=?, health_ms=?, "
                "clock_offset_ms=? WHERE device_id=?",
                (dev["status"], dev["boot"], dev["state_seq"], dev["last_seen_ms"],
                 dev["fw_version"],
                 dev["committed_seq"], dev["tele_boot"], dev["tele_seq"], dev["health_json"],
                 dev["health_ms"], dev["clock_offset_ms"], dev["device_id"]),
            )


def _advance(conn: sqlite3.Connection, device_id: str, committed: int) -> int:
    """Move the contiguous watermark forward over stored seqs and declared-lost ranges."""
    while True:
        rows = conn.execute(
            "SELECT seq FROM messages WHERE device_id=? AND seq>? ORDER BY seq LIMIT 1000",
            (device_id, committed),
        ).fetchall()
        for (seq,) in rows:
            if seq == committed + 1:
                committed = seq
                continue
            lost = _lost_end(conn, device_id, committed + 1)
            if lost is None:
                return committed
            committed = max(committed, lost)
            break  # query again from past the lost range
        else:
            if len(rows) == 1000:
                continue
            lost = _lost_end(conn, device_id, committed + 1)
            if lost is None:
                return committed
            committed = lost


def _lost_end(conn: sqlite3.Connection, device_id: str, seq: int) -> int | None:
    """The last seq of a declared-lost range that covers ``seq``, or None."""
    row = conn.execute("SELECT max(last_seq) FROM lost_ranges WHERE device_id=? AND "
                       "first_seq<=? AND last_seq>=?", (device_id, seq, seq)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def declare_lost(conn: sqlite3.Connection, device_id: str, first: int, last: int, *,
                 reason: str, actor: str, now_ms: int) -> int:
    """Record seqs [first, last] as never to arrive; return the device's new watermark."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT INTO lost_ranges (device_id, first_seq, last_seq, reason, "
                     "declared_by, declared_ms) VALUES (?,?,?,?,?,?)",
                     (device_id, first, last, reason, actor, now_ms))
        ledger.append_decision(conn, "declare_lost", actor, {
            "device_id": device_id, "first_seq": first, "last_seq": last, "reason": reason},
            now_ms)
        row = conn.execute("SELECT committed_seq FROM devices WHERE device_id=?",
                           (device_id,)).fetchone()
        committed = _advance(conn, device_id, int(row[0]))
        conn.execute("UPDATE devices SET committed_seq=? WHERE device_id=?",
                     (committed, device_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return committed


def missing_ranges(conn: sqlite3.Connection, device_id: str, committed: int,
                   limit: int = 100) -> list[tuple[int, int]]:
    """Seq ranges above the watermark that were never received nor declared lost."""
    out: list[tuple[int, int]] = []
    expect = committed + 1
    for (seq,) in conn.execute("SELECT seq FROM messages WHERE device_id=? AND seq>? "
                               "ORDER BY seq", (device_id, committed)):
        while seq > expect and len(out) < limit:
            lost = _lost_end(conn, device_id, expect)
            if lost is not None:
                expect = lost + 1
                continue
            nxt = conn.execute("SELECT min(first_seq) FROM lost_ranges WHERE device_id=? AND "
                               "first_seq>? AND first_seq<?", (device_id, expect, seq)).fetchone()
            end = (int(nxt[0]) if nxt and nxt[0] is not None else seq) - 1
            out.append((expect, end))
            expect = end + 1
        expect = max(expect, seq + 1)
    return out


def _load_devices(conn: sqlite3.Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    cur = conn.execute(f"SELECT * FROM devices WHERE device_id IN ({marks})", sorted(ids))
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def commit_batch(conn: sqlite3.Connection, verdicts: list[Verdict], *,
                 with_ledger: bool = True) -> BatchResult:
    """Write one batch atomically: all of it is durable on return, or none of it.

    Every accepted message and every rejection is appended to the ledger in the same
    transaction (``with_ledger=False`` only for the benchmark's comparison).
    """
    ids = {v.device_id for v in verdicts if isinstance(v, Accepted)}
    conn.execute("BEGIN IMMEDIATE")
    try:
        batch = _Batch(conn, _load_devices(conn, ids))
        for v in verdicts:
            if isinstance(v, Rejected):
                batch.reject(v, v.reason, v.detail)
            elif v.device_id not in batch.devices:  # deleted between verify and commit
                batch.reject(v, "unknown_device", f"device {v.device_id!r} is not registered")
            elif v.channel == "evt":
                batch.add_event(v)
            elif v.channel == "tele":
                batch.add_telemetry(v)
            elif v.channel == "state":
                batch.add_state(v)
            else:
                batch.reject(v, "bad_topic", f"channel {v.channel!r} is not ingested yet")
        batch.write(with_ledger)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return batch.result
