"""Simulated agents for ``portwatch bench``: N signing publishers in one child process.

Run by :mod:`tools.bench` as ``python -m tools.bench_agents SPEC.json``; it writes
its figures to the spec's ``result`` path. Each agent behaves like the firmware's
uplink (PROTOCOL.md, "Delivery"): it signs each event once and keeps its bytes (a
RAM outbox, so a resend is a ``duplicate``, never a ``seq_conflict``), keeps at most
``window`` QoS 1 publishes in flight (gated by PUBACK), and, when the pipeline
acknowledges, reads the controller's signed ``ack``, starts only after the retained
one, and rewinds to resend after a ``resync`` or after ``resend_after_s`` without
progress. Events are due all at once (saturating) or at ``rate`` per second
(paced). A seq's latency runs from its event time (when it became due when paced,
its first ``publish()`` call when saturating; also the envelope's ``ts``) to the
ack that covers it, on this process's clock.

A child process, not threads of the benchmark, so that the publishers do not share
the controller's GIL (a device has its own CPU).
"""

from __future__ import annotations

import json
import resource
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocols import envelope, topics

BOOT = 1


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """What the child is asked to do (written as JSON by the parent)."""

    host: str
    port: int
    site: str
    devices: list[dict[str, str]]
    messages: int
    window: int
    payload_bytes: int
    wait_acks: bool
    result: str
    resend_after_s: float = 10.0
    stall_s: float = 30.0
    rate: float = 0.0  # msgs/s per agent; 0: as fast as the window allows

    @classmethod
    def load(cls, path: Path) -> AgentSpec:
        return cls(**json.loads(path.read_text()))


def weighing_body(seq: int) -> dict[str, Any]:
    """A plausible weighing, different for each seq (as tests/ctl_helpers.py builds them)."""
    gross = 40_000 + (seq * 37) % 9_000 // 20 * 20
    return {"plate": f"辽B{seq % 100_000:05d}", "gross_kg": gross, "tare_kg": 15_000,
            "net_kg": gross - 15_000, "division_kg": 20, "stable_ms": 3_000,
            "arrived_ts": 1_764_072_000_000 + seq, "model": "bench"}


def pad_for(device_id: str, site: str, payload_bytes: int) -> str:
    """Padding that brings a sealed weighing to about ``payload_bytes`` on the wire."""
    probe = _seal(device_id, site, b"\0" * 32, "k1", 1, "x", time.time())
    return "x" * max(0, payload_bytes - len(probe) + 1)


def _seal(device_id: str, site: str, secret: bytes, key_id: str, seq: int, pad: str,
          ts: float) -> bytes:
    body = weighing_body(seq)
    if pad:
        body["pad"] = pad  # unknown body fields are ignored by the controller
    fields = envelope.make(device_id, BOOT, seq, int(ts * 1000), "weighing", body)
    return envelope.seal(secret, key_id, topics.topic(site, device_id, "evt"), fields)


def _nodelay(_c: mqtt.Client, _u: Any, sock: Any) -> None:
    """Disable Nagle on the agent's socket: paho leaves it on, and with acks flowing back
    it held each publish ~20 ms on average (the peer's 40 ms delayed ACK), a delay of
    the load generator, not of the pipeline under test (docs/ARCHITECTURE.md, Pitfalls)."""
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class AgentFigures:
    """What one agent saw; the parent sums them."""

    highest: int = 0  # distinct seqs published
    published: int = 0  # publish() calls, resends included
    pubacked: int = 0
    acked: int = 0
    resends: int = 0
    bytes_sent: int = 0
    first_publish: float = 0.0
    last_publish: float = 0.0
    last_ack: float = 0.0
    latencies_s: list[float] = field(default_factory=list)


class SimAgent:
    """One device: a paho client (own network thread) publishing its event stream."""

    def __init__(self, spec: AgentSpec, device: dict[str, str]) -> None:
        self.spec = spec
        self.device_id = device["device_id"]
        self.key_id = device["key_id"]
        self.secret = bytes.fromhex(device["secret_hex"])
        self.t_evt = topics.topic(spec.site, self.device_id, "evt")
        self.t_ack = topics.topic(spec.site, self.device_id, "ack")
        self.pad = pad_for(self.device_id, spec.site, spec.payload_bytes)
        self.lock = threading.Lock()
        self.next_seq = 1
        self.allowed = spec.messages if spec.rate <= 0 else 0  # highest seq due by the pacer
        self.inflight = 0
        self.first_pub = [0.0] * (spec.messages + 1)  # event time: due (paced) or first publish
        self.outbox: list[bytes | None] = [None] * (spec.messages + 1)
        self.last_progress = time.monotonic()
        self.fig = AgentFigures()
        self.ready = threading.Event()
        self.done = threading.Event()
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{self.device_id}",
                        clean_session=True)
        c.max_inflight_messages_set(self.spec.window)
        c.on_socket_open = _nodelay
        c.on_connect = self._on_connect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        return c

    def connect(self) -> None:
        self.client.connect(self.spec.host, self.spec.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            print(f"{self.device_id}: connect refused: {rc}", file=sys.stderr)
        elif self.spec.wait_acks:
            client.subscribe(self.t_ack, qos=1)
        else:
            self.ready.set()

    def pump(self) -> None:
        """Publish until ``window`` are in flight or the stream is all sent.

        Seqs are reserved under our lock but published outside it: paho calls
        ``on_publish`` holding its own message lock, and ``publish()`` takes that
        lock, so holding ours across ``publish()`` would deadlock.
        """
        for seq in self._reserve():
            now = time.time()
            wire = self.outbox[seq]
            if wire is None:  # sealed once, like the firmware's outbox: a resend is the same bytes
                self.first_pub[seq] = self.first_pub[seq] or now
                wire = self.outbox[seq] = _seal(self.device_id, self.spec.site, self.secret,
                                                self.key_id, seq, self.pad, self.first_pub[seq])
            with self.lock:
                self.fig.first_publish = self.fig.first_publish or now
                self.fig.last_publish = now
                self.fig.bytes_sent += len(wire)
            self.client.publish(self.t_evt, wire, qos=1)

    def _reserve(self) -> list[int]:
        with self.lock:
            n = min(self.spec.window - self.inflight, self.allowed + 1 - self.next_seq)
            if n <= 0:
                return []
            seqs = list(range(self.next_seq, self.next_seq + n))
            self.inflight += n
            self.next_seq += n
            self.fig.published += n
            self.fig.highest = max(self.fig.highest, seqs[-1])
            return seqs

    def allow(self, upto: int) -> None:
        """Let the pacer release seqs up to ``upto``: they are due now (their event time)."""
        now = time.time()
        with self.lock:
            if upto <= self.allowed:
                return
            for seq in range(self.allowed + 1, min(upto, self.spec.messages) + 1):
                self.first_pub[seq] = now
            self.allowed = min(upto, self.spec.messages)
        self.pump()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self.lock:
            self.inflight -= 1
            self.fig.pubacked += 1
            if not self.spec.wait_acks:
                self.last_progress = time.monotonic()
                if self.fig.pubacked >= self.spec.messages:
                    self.done.set()
        self.pump()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            fields, _ = envelope.open_message({self.key_id: self.secret}.get, msg.topic,
                                              bytes(msg.payload), False)
            upto, resync = int(fields["body"]["upto"]), bool(fields["body"].get("resync"))
        except (ValueError, KeyError, TypeError) as exc:
            print(f"{self.device_id}: bad ack: {exc}", file=sys.stderr)
            return
        self._acked(upto, resync)
        self.pump()

    def _acked(self, upto: int, resync: bool) -> None:
        """Count latencies up to ``upto``; the first ack (the retained one) makes us ready."""
        self.ready.set()
        now = time.time()
        with self.lock:
            fig = self.fig
            if upto > fig.acked:
                fig.latencies_s += [now - self.first_pub[s] for s in range(fig.acked + 1, upto + 1)]
                fig.acked, fig.last_ack = upto, now
                self.last_progress = time.monotonic()
            if resync and self.next_seq > fig.acked + 1:
                self.next_seq = fig.acked + 1  # the controller asks for everything after upto
            if fig.acked >= self.spec.messages:
                self.done.set()

    def check_resend(self) -> None:
        """Resend from the ack when it has not moved for ``resend_after_s`` (as the edge does)."""
        with self.lock:
            waiting = self.next_seq > self.fig.acked + 1
            stalled = time.monotonic() - self.last_progress > self.spec.resend_after_s
            if not (self.spec.wait_acks and waiting and stalled):
                return
            self.next_seq = self.fig.acked + 1
            self.fig.resends += 1
            self.last_progress = time.monotonic()
        self.pump()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def run(spec: AgentSpec) -> dict[str, Any]:
    """Connect every agent, stream, wait for the end (or a stall), return the figures."""
    agents = [SimAgent(spec, d) for d in spec.devices]
    for a in agents:
        a.connect()
    for a in agents:
        if not a.ready.wait(30):
            raise SystemExit(f"{a.device_id}: not connected to the broker after 30 s")
    threading.Thread(target=pace, args=(agents, spec.rate), daemon=True).start()
    while not all(a.done.is_set() for a in agents):
        time.sleep(0.1)
        for a in agents:
            a.check_resend()
        if time.monotonic() - max(a.last_progress for a in agents) > spec.stall_s:
            print(f"no progress for {spec.stall_s:.0f} s: giving up", file=sys.stderr)
            break
    for a in agents:
        a.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = round(usage.ru_utime + usage.ru_stime, 2)
    return {**summarize([a.fig for a in agents]), "cpu_s": cpu_s}


def pace(agents: list[SimAgent], rate: float) -> None:
    """Release each agent's seqs at ``rate`` per second, agents evenly staggered."""
    if rate <= 0:
        for a in agents:
            a.pump()
        return
    t0, n = time.monotonic(), len(agents)
    while not all(a.done.is_set() or a.allowed >= a.spec.messages for a in agents):
        now, wake = time.monotonic(), float("inf")
        for i, a in enumerate(agents):
            start = t0 + i / (rate * n)
            due = int((now - start) * rate) + 1 if now >= start else 0
            a.allow(due)
            wake = min(wake, start + due / rate)
        time.sleep(max(0.0, wake - time.monotonic()))


SUMMED = ("sent", "published", "pubacked", "acked", "resends", "bytes_sent", "cpu_s")


def summarize(figs: list[AgentFigures]) -> dict[str, Any]:
    """One child's figures, raw latencies included so that children can be merged."""
    return {
        "sent": sum(f.highest for f in figs),
        "published": sum(f.published for f in figs),
        "pubacked": sum(f.pubacked for f in figs),
        "acked": sum(f.acked for f in figs),
        "resends": sum(f.resends for f in figs),
        "bytes_sent": sum(f.bytes_sent for f in figs),
        "first_publish": min(f.first_publish for f in figs),
        "last_publish": max(f.last_publish for f in figs),
        "last_ack": max(f.last_ack for f in figs),
        "latencies_s": [round(x, 6) for f in figs for x in f.latencies_s],
    }


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of several children as one, latencies as percentiles."""
    out: dict[str, Any] = {k: sum(r[k] for r in results) for k in SUMMED}
    out["cpu_s"] = round(out["cpu_s"], 2)
    out["first_publish"] = min(r["first_publish"] for r in results)
    out["last_publish"] = max(r["last_publish"] for r in results)
    out["last_ack"] = max(r["last_ack"] for r in results)
    out["latency_ms"] = percentiles_ms(sorted(x for r in results for x in r["latencies_s"]))
    return out


def percentiles_ms(sorted_s: list[float]) -> dict[str, float | int]:
    """Nearest-rank p50/p90/p99/max of sorted seconds, in ms."""
    if not sorted_s:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0, "samples": 0}

    def rank(p: float) -> float:
        i = min(len(sorted_s) - 1, max(0, round(p * len(sorted_s)) - 1))
        return round(sorted_s[i] * 1000, 2)

    return {"p50": rank(0.50), "p90": rank(0.90), "p99": rank(0.99),
            "max": round(sorted_s[-1] * 1000, 2), "samples": len(sorted_s)}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tools.bench_agents SPEC.json", file=sys.stderr)
        return 2
    spec = AgentSpec.load(Path(argv[0]))
    Path(spec.result).write_text(json.dumps(run(spec)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
