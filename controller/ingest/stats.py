"""The running ingest's counters: plain data the API can show without importing MQTT."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class IngestStats:
    """Counters since the controller started (persisted figures come from the store)."""

    received: int = 0
    stored: int = 0
    telemetry: int = 0
    findings: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    last_batch_size: int = 0
    max_commit_ms: float = 0.0
    acks_published: int = 0
    connected: bool = False
    connects: int = 0
    last_error: str = ""
    queue_max: int = 0
    queue_depth: int = 0
    queue_peak: int = 0
    # messages dropped because the queue was full: never custody loss, since a device keeps
    # an event in its outbox until the ack covering it, and no ack covers a dropped one
    overflow_dropped: int = 0
    rejection_summaries: int = 0  # ledger entries summing up closed rejection windows
    batch_failures: int = 0  # batches a step failed on (rolled back, resent by the devices)
    supervision: dict[str, Any] = field(default_factory=dict)

    def add(self, stored: int, telemetry: int, findings: int, rejected: dict[str, int],
            size: int, commit_ms: float) -> None:
        self.stored += stored
        self.telemetry += telemetry
        self.findings += findings
        for reason, n in rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n
        self.batches += 1
        self.last_batch_size = size
        self.max_commit_ms = max(self.max_commit_ms, commit_ms)
