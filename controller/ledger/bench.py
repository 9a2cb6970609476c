"""How fast the ledger appends: `append_rate` for the bench command and the README."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from controller.ledger import entries
from controller.storage import ledger_log, open_store

# a weighing as an agent sends it (~330 bytes): the size the ingest appends
_WIRE = (b'{"v":1,"dev":"wb-gate1","boot":3,"seq":%d,"ts":1700000000000,"kind":"weighing",'
         b'"body":{"plate":"\xe8\xbe\xbdB12345","gross_kg":58040,"tare_kg":17280,'
         b'"net_kg":40760,"division_kg":20,"stable_ms":3000,"arrived_ts":1699999990000,'
         b'"model":"portwatch-sim"}}\nk1:' + b"ab" * 32)


def sample_entry(seq: int) -> bytes:
    return entries.device_message(device_id="wb-gate1", channel="evt",
                                  topic="pw/v1/dalian-north/wb-gate1/evt", seq=seq,
                                  received_ms=1_700_000_000_000 + seq, wire=_WIRE % seq)


def append_rate(n: int, batch: int = 500, db_path: Path | None = None) -> dict[str, Any]:
    """Append `n` weighing-sized entries in transactions of `batch` to a fresh store
    (WAL, synchronous=NORMAL, as the controller runs it); return entries/s."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(db_path or Path(tmp) / "bench.db", create=True)
        todo = [sample_entry(seq) for seq in range(1, n + 1)]
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            with store.transaction() as conn:
                ledger_log.append(conn, todo[i:i + batch])
        seconds = time.perf_counter() - t0
        size = ledger_log.size(store.conn)
        store.close()
    return {"entries": size, "batch": batch, "seconds": round(seconds, 3),
            "per_s": round(n / seconds) if seconds else 0}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(append_rate(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
