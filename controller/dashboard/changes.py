"""What changed in the store since the last look, for the dashboard's event stream.

A "mark" per topic is a few aggregates that move whenever a row of that topic is added or
changes state (max ids, counts, latest times): cheap to read (small tables, or ``max(rowid)``
on the big one) and enough for the page to know what to fetch again. Pure comparison here;
``read_marks`` is the one query per topic.
"""

from __future__ import annotations

import sqlite3

Marks = dict[str, tuple[int, ...]]

# topic -> one SELECT of integers; each table exists from the schema's first versions on
QUERIES: dict[str, str] = {
    "alert": "SELECT count(*), coalesce(max(id), 0), coalesce(max(acked_ms), 0), "
             "coalesce(max(cleared_ms), 0), sum(cleared_ms IS NULL) FROM alerts",
    "device": "SELECT count(*), coalesce(max(last_seen_ms), 0), coalesce(max(health_ms), 0), "
              "coalesce(sum(decommissioned_ms IS NOT NULL), 0), "
              "coalesce(sum(status = 'online'), 0) FROM devices",
    "trip": "SELECT count(*), coalesce(max(departed_ms), 0), coalesce(max(closed_ms), 0), "
            "coalesce(sum(status = 'in_transit'), 0) FROM trips",
    "position": "SELECT coalesce(max(rowid), 0) FROM positions",
    "gate": "SELECT count(*), coalesce(max(decided_ms), 0) FROM gate_decisions",
}


def read_marks(conn: sqlite3.Connection) -> Marks:
    """The current mark of every topic."""
    marks: Marks = {}
    for topic, sql in QUERIES.items():
        row = conn.execute(sql).fetchone()
        marks[topic] = tuple(int(v or 0) for v in row)
    return marks


def changed(before: Marks | None, now: Marks) -> list[str]:
    """The topics whose mark moved (every topic on the first look)."""
    return [t for t in now if before is None or before.get(t) != now[t]]


def sse(event: str, data: str) -> bytes:
    """One server-sent event (``data`` holds no newline: it is compact JSON)."""
    return f"event: {event}\ndata: {data}\n\n".encode()
