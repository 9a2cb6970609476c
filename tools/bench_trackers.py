"""Emulated GPS trackers for ``portwatch bench --trackers N``: thousands in one child process.

Run by :mod:`tools.bench_tracker_mode` as ``python -m tools.bench_trackers SPEC.json``; it
writes its figures to the spec's ``result`` path. Each tracker signs real ``positions``
envelopes (``fixes_per_msg`` fixes each, one fix every ``fix_every_s`` of device time, the
tracker firmware's batching) with its own HMAC key on its own topics, and some trackers
also raise an ``ext_power_lost`` alarm mid-stream: the probe of the supervision rules, whose
alert is committed in the same transaction as the alarm.

Lightweight, not the firmware: the trackers share ``clients`` MQTT connections per process
(a paho client per tracker would be thousands of threads here), one of which also reads every
tracker's signed ``ack`` (``pw/v1/<site>/+/ack``). The controller sees what it would see
from real trackers: one topic, key and seq stream per device. A seq's latency runs from its
publish (saturating) or the time it became due (paced) to the ack that covers it.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import envelope, topics
from tools.bench_agents import _nodelay, percentiles_ms

BOOT = 1
LAT0, LON0 = 38_900_000, 121_600_000  # the demo grain port, near Dalian


@dataclass(frozen=True, slots=True)
class TrackerSpec:
    """What the child is asked to do (written as JSON by the parent)."""

    host: str
    port: int
    site: str
    devices: list[dict[str, str]]
    messages: int  # positions messages per tracker
    fixes_per_msg: int
    fix_every_s: float
    alarm_every: int  # every n-th tracker raises one alarm mid-stream (0: none)
    rate: float  # positions messages/s offered by this child in all; 0: saturating
    window: int  # QoS 1 publishes in flight per connection
    clients: int
    wait_acks: bool
    result: str
    resend_after_s: float = 10.0
    stall_s: float = 30.0

    @classmethod
    def load(cls, path: Path) -> TrackerSpec:
        return cls(**json.loads(path.read_text()))


def positions_body(index: int, msg: int, spec: TrackerSpec, t0_ms: int) -> dict[str, Any]:
    """Batch ``msg`` of tracker ``index``: fixes along a line out of the port, in order."""
    fixes = []
    for j in range(spec.fixes_per_msg):
        k = msg * spec.fixes_per_msg + j
        ts = t0_ms + int(k * spec.fix_every_s * 1000)
        fixes.append([ts, LAT0 + index * 37 + k * 90, LON0 + index * 23 + k * 110,
                      450 + (k * 7) % 200, (45 + index) % 360, 9, 8])
    return {"fixes": fixes, "ign": True, "ext_power": True, "tamper": False, "src": "nmea"}


@dataclass
class Tracker:
    device_id: str
    key_id: str
    secret: bytes
    index: int
    kinds: list[str]  # per seq (index seq - 1): "positions" or "alarm"
    wires: list[bytes | None] = field(default_factory=list)
    due: list[float] = field(default_factory=list)  # event time per seq
    acked: int = 0
    published: int = 0


class Fleet:
    """Every tracker of this child, their connections and their acks."""

    def __init__(self, spec: TrackerSpec) -> None:
        self.spec = spec
        self.t0_ms = int(time.time() * 1000) - int(
            spec.messages * spec.fixes_per_msg * spec.fix_every_s * 1000) - 60_000
        self.trackers: dict[str, Tracker] = {}
        for i, d in enumerate(spec.devices):
            kinds = ["positions"] * spec.messages
            if spec.alarm_every and i % spec.alarm_every == 0:
                kinds.insert(spec.messages // 2, "alarm")
            n = len(kinds)
            self.trackers[d["device_id"]] = Tracker(
                d["device_id"], d["key_id"], bytes.fromhex(d["secret_hex"]), i, kinds,
                [None] * n, [0.0] * n)
        self.lock = threading.Lock()
        self.last_progress = time.monotonic()
        self.latencies: dict[str, list[float]] = {"positions": [], "alarm": []}
        self.first_publish = 0.0
        self.last_ack = 0.0
        self.bytes_sent = 0
        self.resends = 0
        self.ready = threading.Event()
        self.retained = 0
        self.pubacked = 0
        self.clients = [self._client(i) for i in range(max(1, spec.clients))]

    def _client(self, i: int) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-trackers-{id(self)}-{i}",
                        clean_session=True)
        c.max_inflight_messages_set(self.spec.window)
        c.max_queued_messages_set(0)
        c.on_socket_open = _nodelay
        c.on_publish = self._on_publish
        if i == 0:
            c.on_connect = self._on_connect
            c.on_message = self._on_ack
        return c

    def connect(self) -> None:
        for c in self.clients:
            c.connect(self.spec.host, self.spec.port, keepalive=60)
            c.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            print(f"trackers: connect refused: {rc}", file=sys.stderr)
        elif self.spec.wait_acks:
            client.subscribe(topics.uplink_filter(self.spec.site, "ack"), qos=1)
        else:
            self.ready.set()

    def _wire(self, t: Tracker, seq: int) -> bytes:
        wire = t.wires[seq - 1]
        if wire is None:
            kind = t.kinds[seq - 1]
            if kind == "alarm":
                body: dict[str, Any] = {"alarm": "ext_power_lost", "state": "raised",
                                        "detail": {"bench": True}}
            else:
                msg = t.kinds[:seq].count("positions") - 1
                body = positions_body(t.index, msg, self.spec, self.t0_ms)
            topic = topics.topic(self.spec.site, t.device_id, "evt")
            fields = envelope.make(t.device_id, BOOT, seq, int(time.time() * 1000), kind, body)
            wire = t.wires[seq - 1] = envelope.seal(t.secret, t.key_id, topic, fields)
        return wire

    def publish(self, t: Tracker, seq: int, *, due: float | None = None) -> None:
        """Publish one seq (sealed once: a resend is the same bytes)."""
        now = time.time()
        wire = self._wire(t, seq)
        with self.lock:
            t.due[seq - 1] = t.due[seq - 1] or (due or now)
            self.first_publish = self.first_publish or now
            self.bytes_sent += len(wire)
            t.published = max(t.published, seq)
        client = self.clients[t.index % len(self.clients)]
        client.publish(topics.topic(self.spec.site, t.device_id, "evt"), wire, qos=1)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self.lock:
            self.pubacked += 1
            if not self.spec.wait_acks:
                self.last_progress = time.monotonic()

    def _on_ack(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            _, device_id, _ = topics.parse(msg.topic)
            t = self.trackers[device_id]
            fields, _ = envelope.open_message({t.key_id: t.secret}.get, msg.topic,
                                              bytes(msg.payload), False)
            upto = int(fields["body"]["upto"])
        except (ValueError, KeyError, TypeError) as exc:
            print(f"trackers: bad ack on {msg.topic}: {exc}", file=sys.stderr)
            return
        now = time.time()
        with self.lock:
            if msg.retain:
                self.retained += 1
                if self.retained >= len(self.trackers):
                    self.ready.set()
            upto = min(upto, t.published)  # a retained ack from the announce covers nothing
            for s in range(t.acked + 1, upto + 1):
                self.latencies[t.kinds[s - 1]].append(now - t.due[s - 1])
            if upto > t.acked:
                t.acked, self.last_ack, self.last_progress = upto, now, time.monotonic()

    def done(self) -> bool:
        """Every seq acked by the controller (or, without acks, PUBACKed by the broker)."""
        with self.lock:
            if not self.spec.wait_acks:
                return self.pubacked >= sum(len(t.kinds) for t in self.trackers.values())
            return all(t.acked >= len(t.kinds) for t in self.trackers.values())

    def resend_stalled(self) -> None:
        """Resend from each tracker's ack when nothing moved for ``resend_after_s``."""
        with self.lock:
            if time.monotonic() - self.last_progress <= self.spec.resend_after_s:
                return
            behind = [(t, s) for t in self.trackers.values()
                      for s in range(t.acked + 1, t.published + 1)]
            self.last_progress = time.monotonic()
            self.resends += 1
        for t, s in behind:
            self.publish(t, s)

    def close(self) -> None:
        for c in self.clients:
            c.disconnect()
            c.loop_stop()


def stream(fleet: Fleet) -> None:
    """Saturating: every tracker's seqs round-robin, as fast as the windows allow. Paced:
    each tracker's batch every ``fixes_per_msg * fix_every_s / speed`` seconds, staggered."""
    spec = fleet.spec
    trackers = list(fleet.trackers.values())
    longest = max(len(t.kinds) for t in trackers)
    if spec.rate <= 0:
        for seq in range(1, longest + 1):
            for t in trackers:
                if seq <= len(t.kinds):
                    fleet.publish(t, seq)
        return
    period = len(trackers) / spec.rate  # each tracker's interval between messages
    t0 = time.monotonic()
    schedule = sorted((t0 + (i / len(trackers)) * period + (seq - 1) * period, i, seq)
                      for i, t in enumerate(trackers) for seq in range(1, len(t.kinds) + 1))
    for at, i, seq in schedule:
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fleet.publish(trackers[i], seq, due=time.time())


def run(spec: TrackerSpec) -> dict[str, Any]:
    fleet = Fleet(spec)
    fleet.connect()
    if not fleet.ready.wait(60):
        raise SystemExit(f"trackers: not ready after 60 s ({fleet.retained} retained acks of "
                         f"{len(fleet.trackers)})")
    pacer = threading.Thread(target=stream, args=(fleet,), daemon=True)
    pacer.start()
    while not fleet.done():
        time.sleep(0.05)
        if spec.wait_acks and not pacer.is_alive():
            fleet.resend_stalled()
        if time.monotonic() - fleet.last_progress > spec.stall_s and not pacer.is_alive():
            print(f"trackers: no progress for {spec.stall_s:.0f} s: giving up", file=sys.stderr)
            break
    pacer.join()
    fleet.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    trackers = fleet.trackers.values()
    return {"sent": sum(len(t.kinds) for t in trackers),
            "positions_msgs": sum(t.kinds.count("positions") for t in trackers),
            "alarms": sum(t.kinds.count("alarm") for t in trackers),
            "acked": sum(t.acked for t in trackers), "pubacked": fleet.pubacked,
            "resends": fleet.resends,
            "bytes_sent": fleet.bytes_sent, "first_publish": fleet.first_publish,
            "last_ack": fleet.last_ack, "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "latencies_s": {k: [round(x, 6) for x in v] for k, v in fleet.latencies.items()}}


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several children's figures as one, latencies as percentiles."""
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in (
        "sent", "positions_msgs", "alarms", "acked", "pubacked", "resends", "bytes_sent",
        "cpu_s")}
    out["cpu_s"] = round(out["cpu_s"], 2)
    out["first_publish"] = min(r["first_publish"] for r in results)
    out["last_ack"] = max(r["last_ack"] for r in results)
    out["latency_ms"] = {k: percentiles_ms(sorted(x for r in results
                                                  for x in r["latencies_s"][k]))
                         for k in ("positions", "alarm")}
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.bench_trackers SPEC.json", file=sys.stderr)
        return 2
    spec = TrackerSpec.load(Path(argv[0]))
    Path(spec.result).write_text(json.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
