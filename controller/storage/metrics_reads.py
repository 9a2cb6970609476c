"""The few cheap reads a Prometheus scrape makes (controller/metrics/store.py).

Each is one indexed query or a small table scan: a scrape every 15 s must cost the store
next to nothing, whatever the ledger's length.
"""

from __future__ import annotations

import sqlite3
from typing import Any


def device_presence(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every device's ``status``, ``last_seen_ms`` and ``decommissioned_ms``: what
    controller.device_status.status needs, and nothing else of the row."""
    cur = conn.execute("SELECT status, last_seen_ms, decommissioned_ms FROM devices")
    return [{"status": s, "last_seen_ms": seen, "decommissioned_ms": gone}
            for s, seen, gone in cur]


def active_alerts(conn: sqlite3.Connection) -> list[tuple[str, bool, int]]:
    """(severity, acknowledged, count) of the alerts not resolved yet (the API's default
    list, GET /api/v1/alerts)."""
    cur = conn.execute("SELECT severity, acked_ms IS NOT NULL, count(*) FROM alerts "
                       "WHERE cleared_ms IS NULL GROUP BY severity, acked_ms IS NOT NULL")
    return [(str(sev), bool(acked), int(n)) for sev, acked, n in cur]


def newest_cosigned_checkpoint_ms(conn: sqlite3.Connection) -> int | None:
    """When the newest checkpoint that any witness cosigned was signed, or None."""
    row = conn.execute("SELECT max(c.created_ms) FROM ledger_checkpoints c "
                       "JOIN ledger_cosignatures s ON s.checkpoint_id = c.id").fetchone()
    return None if row is None or row[0] is None else int(row[0])
