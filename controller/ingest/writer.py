"""Commit one batch of verdicts in a single transaction: store, project, supervise, ledger.

Custody events (``evt``) are deduplicated on (device, seq): the same bytes again
are a ``duplicate`` (QoS 1 redelivery, a resend after reboot, or a replay); other
bytes under a stored seq are a ``seq_conflict``. Telemetry and state carry a
(boot, seq) freshness key instead, so a replayed old health or birth is ``stale``.
Each accepted event is turned into table rows by its projection (controller/projections)
and handed to supervision (controller/supervision) in the same transaction. After the
commit each device's contiguous watermark ("committed up to seq N") is what the ingest
acknowledges, so the edge may drop exactly what is durable. Rejections cost bounded
space: the first few of each (device, reason, window) are kept in full, the rest are
counted (controller/ingest/rejects.py).

This module decides; controller/storage/custody.py writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller import commands, ledger
from controller.facts import Fact
from controller.ingest.rejects import DEFAULT_LIMITS, RejectionLimits, Tally
from controller.ingest.verify import Accepted, Rejected, Verdict
from controller.ledger import device_keys
from controller.plausibility import Limits, Settings, limits_for
from controller.projections import project
from controller.storage import calibrations as calibration_rows
from controller.storage import custody, ledger_log, transaction
from controller.storage import devices as devices_store
from controller.supervision import device_keys as key_alerts

log = logging.getLogger("portwatch.ingest")
EXCERPT_BYTES = 128
# a refused message's topic and detail (which may quote what the sender chose, e.g. a key
# id) are clipped to this many characters: a kept rejection has a bounded size
TEXT_CHARS = 200
Supervise = Callable[[sqlite3.Connection, Sequence[Fact]], Sequence[object]]


@dataclass(slots=True)
class BatchResult:
    """What one commit did; ``watermarks`` are the devices to acknowledge."""

    stored: int = 0
    telemetry: int = 0
    findings: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    watermarks: dict[str, int] = field(default_factory=dict)
    births: list[str] = field(default_factory=list)
    stored_by_kind: dict[str, int] = field(default_factory=dict)  # every message stored


class _Batch:
    """Rows gathered from one batch before they are written together."""

    def __init__(self, conn: sqlite3.Connection, devices: dict[str, dict[str, Any]],
                 limits: RejectionLimits = DEFAULT_LIMITS) -> None:
        self.conn = conn
        self.tally = Tally(conn, limits)
        self.devices = devices
        self.messages: list[tuple[Any, ...]] = []
        self.projected: dict[str, list[dict[str, Any]]] = {}
        self.facts: list[Fact] = []
        self.health: list[tuple[Any, ...]] = []
        self.rejections: list[tuple[Any, ...]] = []
        self.ledger: list[bytes] = []  # every accepted message and every rejection, in order
        self.seen: dict[tuple[str, int], str] = {}
        self.touched: set[str] = set()
        self.result = BatchResult()
        self.plausibility = Settings()
        # device -> its certificates' windows (only devices that have any)
        self.calibrations: dict[str, list[tuple[int, int]]] = {}
        # device -> the limits its last ``limits`` ledger entry holds (see note_limits)
        self.recorded: dict[str, dict[str, Any]] = {}
        self.noted: dict[str, dict[str, Any]] = {}
        self.mismatches: list[tuple[Accepted, str, str]] = []  # (birth, registered, offered)

    def reject(self, v: Rejected | Accepted, reason: str, detail: str) -> None:
        dev = v.device_id
        self.result.rejected[reason] = self.result.rejected.get(reason, 0) + 1
        # unknown ids are as many as a sender likes: they share one bucket ("*")
        registered = dev is not None and reason != "unknown_device"
        if not self.tally.count(v.msg, dev, reason, registered):
            return  # counted in its bucket only: the flood costs no row, entry or log line
        topic, detail = _clip(v.msg.topic), _clip(detail)
        level = logging.INFO if reason == "duplicate" else logging.WARNING
        log.log(level, "rejected %s from %s on %s: %s", reason, dev, topic, detail)
        self.rejections.append((v.msg.received_ms, topic, dev, reason, detail,
                                len(v.msg.payload), v.msg.payload[:EXCERPT_BYTES].hex()))
        self.ledger.append(ledger.decision(
            kind="rejection", actor="controller", time_ms=v.msg.received_ms,
            body={"reason": reason, "detail": detail, "topic": topic, "device_id": dev,
                  "size": len(v.msg.payload),
                  "sha256": hashlib.sha256(v.msg.payload).hexdigest()}))

    def add_event(self, v: Accepted) -> None:
        f = v.fields
        key = (v.device_id, f["seq"])
        digest = hashlib.sha256(v.msg.payload).hexdigest()
        stored = self.seen.get(key) or custody.stored_digest(self.conn, *key)
        self.touched.add(v.device_id)
        if stored is not None and stored == digest:
            self.reject(v, "duplicate", f"seq {f['seq']} is already stored")
            return
        pub = self.devices[v.device_id].get("device_pub")
        if pub is not None:
            # the HMAC secret is no proof of the device: the controller holds it too
            problem = device_keys.check_wire(pub, v.msg.topic, v.msg.payload)
            if problem is not None:
                self.reject(v, "bad_device_signature", f"seq {f['seq']}: {problem}")
                return
        if stored is not None:
            self.reject(v, "seq_conflict", f"seq {f['seq']} is stored with other content")
            return
        self.seen[key] = digest
        # the device's limits as known now: its register map and its last health's clock
        limits = limits_for(self.devices[v.device_id], self.plausibility)
        windows = self.calibrations.get(v.device_id)
        if windows is not None:  # judged against its certificates (controller/calibration.py)
            limits = dataclasses.replace(limits, calibration=tuple(windows))
        fact = Fact.from_fields(v.device_id, f, v.msg.received_ms, limits)
        self.note_limits(v.device_id, limits, v.msg.received_ms)
        self.messages.append((v.device_id, fact.seq, fact.boot, fact.kind, fact.device_ts,
                              fact.received_ms, v.msg.topic, v.msg.payload, digest,
                              int(pub is not None)))
        for table, row in project(fact):
            self.projected.setdefault(table, []).append(row)
        self.facts.append(fact)
        self.result.stored += 1
        self.record(v)
        self.seen_device(v)

    def note_limits(self, device_id: str, limits: Limits, received_ms: int) -> None:
        """A ``limits`` decision before the device's event when what it is held to changed.

        The weighing projection's flags depend on the device's registration, its latest
        health and the site's settings, none of which is in the event: the ledger records
        them, so the audit (controller/audit.py) replays the flags exactly. Only what can
        change a flag is compared, so a clock offset that moves by milliseconds with every
        health sample makes no entry while it stays within tolerance."""
        body = recorded_limits(device_id, limits)
        last = self.noted.get(device_id) or self.recorded.get(device_id)
        if last is not None and limits_key(last) == limits_key(body):
            return
        self.noted[device_id] = body
        self.ledger.append(ledger.decision(kind="limits", actor="controller",
                                           time_ms=received_ms, body=body))

    def record(self, v: Accepted) -> None:
        """The accepted message, exact bytes and receipt, for the ledger (each stored
        message passes here once: it is counted by kind here too)."""
        kind = v.fields["kind"]
        self.result.stored_by_kind[kind] = self.result.stored_by_kind.get(kind, 0) + 1
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

    def add_cmdack(self, v: Accepted) -> None:
        """A device's answer to a command (controller/commands.py): the command's state
        changes, and the message itself is the ledger's record of it."""
        refused = commands.take_ack(self.conn, v.device_id, v.fields["body"], v.msg.received_ms)
        if refused is not None:
            self.reject(v, *refused)
            return
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
        if f["kind"] == "birth" and isinstance(f["body"].get("pub"), str):
            self.birth_key(v, f["body"]["pub"])

    def birth_key(self, v: Accepted, offered: str) -> None:
        """Trust on first use: the first authentic birth carrying a key registers it (a
        ledger decision after the birth it came in); a birth offering another key than the
        registered one is not adopted and raises ``device_key_mismatch``."""
        dev = self.devices[v.device_id]
        registered = dev.get("device_pub")
        if registered == offered:
            return
        if registered is None:
            dev["device_pub"] = offered
            devices_store.set_device_pub(self.conn, v.device_id, offered)
            self.ledger.append(ledger.decision(
                kind=device_keys.DECISION, actor=f"device:{v.device_id}",
                time_ms=v.msg.received_ms,
                body=device_keys.decision_body(v.device_id, offered, "birth", None)))
            log.info("registered the device key of %s from its birth (%s…)", v.device_id,
                     offered[:16])
            return
        # written now, in order: the alert's ledger entry goes after this batch's entries
        self.mismatches.append((v, registered, offered))
        log.warning("birth of %s offers device key %s…, registered is %s…: not adopted",
                    v.device_id, offered[:16], registered[:16])

    def write(self, with_ledger: bool) -> None:
        c = self.conn
        if with_ledger and self.ledger:
            ledger_log.append(c, self.ledger)  # same transaction: store and log never disagree
        custody.insert_messages(c, self.messages)
        custody.insert_projected(c, self.projected)
        custody.insert_health(c, self.health)
        custody.insert_rejections(c, self.rejections)
        self.tally.write()
        for dev_id in self.touched:
            dev = self.devices[dev_id]
            dev["committed_seq"] = custody.advance(c, dev_id, dev["committed_seq"])
            self.result.watermarks[dev_id] = dev["committed_seq"]
        custody.update_device_status(c, self.devices.values())
        for v, registered, offered in self.mismatches:
            if key_alerts.raise_mismatch(c, device_id=v.device_id, registered=registered,
                                         offered=offered, device_ts=v.fields["ts"],
                                         received_ms=v.msg.received_ms):
                self.result.findings += 1


def recorded_limits(device_id: str, limits: Limits) -> dict[str, Any]:
    """The body of a ``limits`` decision: a device's Limits as JSON (FORMAT.md)."""
    return {"device_id": device_id, "capacity_kg": limits.capacity_kg,
            "division_kg": limits.division_kg, "plate_pattern": limits.plate_pattern,
            "max_clock_skew_ms": limits.max_clock_skew_ms,
            "max_delay_ms": limits.max_delay_ms, "clock_offset_ms": limits.clock_offset_ms,
            **({} if limits.calibration is None else
               {"calibration": [list(w) for w in limits.calibration]})}


def limits_key(body: dict[str, Any]) -> tuple[Any, ...]:
    """What in a ``limits`` body can change a flag: the clock offset only as "off or not"
    (plausibility.time_problems compares its size with the tolerance, nothing else)."""
    offset, skew = body.get("clock_offset_ms"), body.get("max_clock_skew_ms")
    off = isinstance(offset, int) and isinstance(skew, int) and abs(offset) > skew
    windows = body.get("calibration")
    return (body.get("capacity_kg"), body.get("division_kg"), body.get("plate_pattern"),
            skew, body.get("max_delay_ms"), off,
            None if windows is None else tuple(tuple(w) for w in windows))


def _clip(text: str) -> str:
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"


def commit_batch(conn: sqlite3.Connection, verdicts: list[Verdict], *,
                 with_ledger: bool = True, supervise: Supervise | None = None,
                 limits: RejectionLimits = DEFAULT_LIMITS,
                 plausibility: Settings | None = None,
                 recorded_limits: dict[str, dict[str, Any]] | None = None) -> BatchResult:
    """Write one batch atomically: all of it is durable on return, or none of it.

    Every accepted message and every rejection is appended to the ledger in the same
    transaction (``with_ledger=False`` only for the benchmark's comparison), a rejection
    only while its bucket is within ``limits`` (beyond, it is counted only); then
    ``supervise`` (the supervision runner) sees the batch's new facts, still inside it.
    Each event is judged against ``plausibility`` (the site's plate format and clock
    tolerances) and its device's registration: flagged, never refused; what it was judged
    against goes into the ledger as a ``limits`` decision when it changed since
    ``recorded_limits`` (the caller's memory of what it recorded, updated on commit; None:
    each batch records it once per device).
    """
    ids = {v.device_id for v in verdicts if isinstance(v, Accepted)}
    with transaction(conn):
        batch = _Batch(conn, custody.load_devices(conn, ids), limits)
        batch.calibrations = calibration_rows.windows(conn, ids)
        batch.plausibility = plausibility or batch.plausibility
        if recorded_limits is not None:
            batch.recorded = recorded_limits
        for v in verdicts:
            if isinstance(v, Rejected):
                batch.reject(v, v.reason, v.detail)
            elif v.device_id not in batch.devices:  # removed between verify and commit
                batch.reject(v, "unknown_device",
                             f"device {v.device_id!r} is not registered or was decommissioned")
            elif v.channel == "evt":
                batch.add_event(v)
            elif v.channel == "tele":
                batch.add_telemetry(v)
            elif v.channel == "state":
                batch.add_state(v)
            elif v.channel == "cmdack":
                batch.add_cmdack(v)
            else:
                batch.reject(v, "bad_topic", f"channel {v.channel!r} is not ingested yet")
        batch.write(with_ledger)
        if supervise is not None and batch.facts:
            batch.result.findings += len(supervise(conn, batch.facts))
    if recorded_limits is not None and with_ledger:
        recorded_limits.update(batch.noted)  # only now: a rolled-back batch recorded nothing
    return batch.result

