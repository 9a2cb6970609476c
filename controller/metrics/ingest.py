"""What the ingest measures as it goes: commit and supervision latency, stored messages by
kind, bytes received.

Updated once per batch (never per message), from the batch's own result; the histograms
and counters are prometheus_client's, whose per-value lock is the only synchronisation
(the writer thread observes, a scrape reads). They are registered in no global registry:
each API app puts them into its own (controller/metrics/registry.py), so two controllers
in one test process never collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from prometheus_client import Counter, Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

T = TypeVar("T")

# from half a millisecond (a small batch) up to 10 s (a store that has fallen behind)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)
# the supervision steps run in each batch's transaction (controller/ingest/service.py)
SUPERVISION_STEPS = ("rules", "gate", "cross_sensor", "calibration", "mass_balance")


class IngestMetrics(Collector):
    """The ingest's own counters and histograms; a Collector of them all."""

    def __init__(self) -> None:
        self.commit_seconds = Histogram(
            "portwatch_ingest_commit_duration_seconds",
            "Time to commit one batch: verify-to-durable, its supervision included",
            buckets=LATENCY_BUCKETS, registry=None)
        self.supervision_seconds = Histogram(
            "portwatch_supervision_duration_seconds",
            "Time one supervision step took over one batch's new facts, by step "
            "(rules: the supervision rules; gate, cross_sensor, calibration, mass_balance)",
            ["step"], buckets=LATENCY_BUCKETS, registry=None)
        self.stored = Counter(
            "portwatch_ingest_stored_messages",
            "Messages accepted and stored, by kind (weighing, positions, health, birth, …)",
            ["kind"], registry=None)
        self.received_bytes = Counter(
            "portwatch_ingest_received_bytes",
            "Bytes of MQTT payload the ingest took from its queue (accepted or not)",
            registry=None)
        # children made once: .labels() takes a lock and a dict lookup per call
        self._steps = {s: self.supervision_seconds.labels(step=s) for s in SUPERVISION_STEPS}

    def batch(self, stored_by_kind: Mapping[str, int], commit_s: float,
              payload_bytes: int) -> None:
        """One committed batch: its latency, what it stored by kind, its size in bytes."""
        self.commit_seconds.observe(commit_s)
        self.received_bytes.inc(payload_bytes)
        for kind, n in stored_by_kind.items():
            self.stored.labels(kind=kind).inc(n)

    def timed(self, step: str, run: Callable[[], T]) -> T:
        """``run()``, its duration observed under supervision step ``step``."""
        started = time.perf_counter()
        try:
            return run()
        finally:
            self._steps[step].observe(time.perf_counter() - started)

    def collect(self) -> Iterator[Metric]:
        for metric in (self.commit_seconds, self.supervision_seconds, self.stored,
                       self.received_bytes):
            yield from metric.collect()
