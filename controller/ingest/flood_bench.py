"""How fast the ingest refuses a flood of forged messages, and what it stores for them.

``python -m controller.ingest.flood_bench 20000`` verifies and commits ``n`` messages
forged for one registered device (its topic and shape, a signature made without its key) in
batches of 500, as the ingest's writer does, once with the bounds of
controller/ingest/rejects.py and once keeping every refusal in full (as before the bound),
and prints messages/s and the store's size for each.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from controller import registry
from controller.ingest.rejects import DEFAULT_LIMITS, RejectionLimits
from controller.ingest.verify import Received, check_message
from controller.ingest.writer import commit_batch
from controller.storage import now_ms, open_store
from protocols import envelope, topics

KEEP_ALL = RejectionLimits(keep_per_bucket=2**62, keep_per_window=2**62)


def forged_rate(n: int, *, limits: RejectionLimits = DEFAULT_LIMITS,
                batch: int = 500) -> dict[str, Any]:
    """Verify and commit ``n`` forged messages in a fresh store; msgs/s and bytes stored."""
    ingest_log = logging.getLogger("portwatch.ingest")
    level = ingest_log.level
    ingest_log.setLevel(logging.ERROR)  # a kept refusal logs a line: not what is measured
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "flood.db"
            store = open_store(path, create=True)
            dev = registry.provision(store, device_id="wb-1", site="bench", kind="weighbridge",
                                     driver={})
            keys = registry.secrets_by_device(store)
            topic = topics.topic("bench", "wb-1", "evt")
            msgs = [Received(topic, envelope.seal(b"\x5a" * 32, dev["key_id"], topic,
                                                  envelope.make("wb-1", 1, i + 1, now_ms(),
                                                                "weighing", {"gross_kg": i})),
                             now_ms()) for i in range(n)]
            t0 = time.perf_counter()
            for i in range(0, n, batch):
                commit_batch(store.conn, [check_message(m, site="bench", keys=keys)
                                          for m in msgs[i:i + batch]], limits=limits)
            seconds = time.perf_counter() - t0
            store.close()  # the last connection closing moves the WAL into the main file
            size = path.stat().st_size + _size(Path(f"{path}-wal"))
    finally:
        ingest_log.setLevel(level)
    return {"messages": n, "seconds": round(seconds, 3),
            "per_s": round(n / seconds) if seconds else 0, "store_bytes": size}


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


if __name__ == "__main__":
    import json
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    print(json.dumps({"bounded": forged_rate(count),
                      "every_refusal_kept": forged_rate(count, limits=KEEP_ALL)}))
