"""How fast the audit replays a store, and how much memory it takes.

``python -m controller.audit_bench --events 200000 --devices 20`` fills a fresh store
through the ingest's own verify-and-commit path (signed weighings, every tenth an alarm,
batches of 500, a health sample per device now and then), then runs the full audit
(``portwatch ledger audit``'s code) on a read snapshot of it and prints custody events
replayed per second, the store's size and the audit's peak Python memory (tracemalloc, so
the timed run is a separate one without it). The audit goes device by device in chunks,
so its memory stays the chunk's, whatever the store's size.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from controller import audit, registry
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.storage import open_store, read_snapshot
from protocols import envelope, topics

SITE = "bench"
T0 = 1764072000000


def fill(path: Path, events: int, devices: int, batch: int = 500) -> float:
    """A store with ``events`` custody events over ``devices`` devices; seconds it took."""
    store = open_store(path, create=True)
    cfgs = [registry.provision(store, device_id=f"wb-{d}", site=SITE, kind="weighbridge",
                               driver={}) for d in range(devices)]
    keys = registry.secrets_by_device(store)
    recorded: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    seqs = [0] * devices
    tele = [0] * devices
    pending: list[Received] = []
    for i in range(events):
        d = i % devices
        cfg = cfgs[d]
        seqs[d] += 1
        seq, ts = seqs[d], T0 + i * 100
        body: dict[str, Any]
        if seq % 10 == 0:
            kind, body = "alarm", {"alarm": "overload", "state": "raised" if seq % 20 else
                                   "cleared"}
        else:
            kind, body = "weighing", {"plate": "辽B12345", "gross_kg": 40000 + 20 * (i % 500),
                                      "tare_kg": 15000, "net_kg": 25000 + 20 * (i % 500),
                                      "division_kg": 20, "stable_ms": 3000, "arrived_ts": ts}
        pending.append(_sealed(cfg, "evt", seq, ts, kind, body))
        if seq % 100 == 0:
            tele[d] += 1
            pending.append(_sealed(cfg, "tele", tele[d], ts, "health", {
                "fw": "0.1.0", "uptime_s": seq, "mem_free": 50000, "backlog": 0,
                "next_seq": seq + 1}))
        if len(pending) >= batch:
            commit_batch(store.conn, [check_message(m, site=SITE, keys=keys) for m in pending],
                         recorded_limits=recorded)
            pending = []
    if pending:
        commit_batch(store.conn, [check_message(m, site=SITE, keys=keys) for m in pending],
                     recorded_limits=recorded)
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def _sealed(cfg: dict[str, Any], channel: str, seq: int, ts: int, kind: str,
            body: dict[str, Any]) -> Received:
    topic = topics.topic(SITE, cfg["device_id"], channel)
    fields = envelope.make(cfg["device_id"], 1, seq, ts, kind, body)
    wire = envelope.seal(bytes.fromhex(cfg["secret_hex"]), cfg["key_id"], topic, fields)
    return Received(topic, wire, ts + 500)


def measure(events: int, devices: int, chunk: int = audit.CHUNK) -> dict[str, Any]:
    """Fill a store, audit it twice (timed; then under tracemalloc); the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.db"
        fill_s = fill(path, events, devices)
        with read_snapshot(path) as conn:
            report = audit.audit_store(conn, chunk=chunk)
        assert report.clean, [m.as_json() for m in report.mismatches[:5]]
        tracemalloc.start()
        with read_snapshot(path) as conn:
            audit.audit_store(conn, chunk=chunk)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        size = path.stat().st_size
    return {"events": report.entries, "devices": devices, "ledger_entries": report.ledger_size,
            "store_mb": round(size / 1e6, 1), "fill_s": round(fill_s, 1),
            "audit_s": round(report.seconds, 2),
            "events_per_s": round(report.entries / report.seconds) if report.seconds else 0,
            "chunk": chunk, "peak_mb": round(peak / 1e6, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--devices", type=int, default=20)
    p.add_argument("--chunk", type=int, default=audit.CHUNK)
    a = p.parse_args()
    print(json.dumps(measure(a.events, a.devices, a.chunk)))


if __name__ == "__main__":
    main()
