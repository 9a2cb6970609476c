"""What changed in the store since the last look, for the dashboard's event stream.

A "mark" per topic is a few aggregates that move whenever a row of that topic is added or
changes state (max ids, counts, latest times): cheap to read (small tables, or ``max(rowid)``
on the big one) and enough for the page to know what to fetch again. Pure comparison here;
``read_marks`` is the one query per topic.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from controller.storage import dashboard_reads

Marks = dict[str, tuple[int, ...]]

# topic -> its one read (controller/storage/dashboard_reads.py), in the order topics are reported
READS: dict[str, Callable[[sqlite3.Connection], tuple[int, ...]]] = {
    "alert": dashboard_reads.alert_mark,
    "device": dashboard_reads.device_mark,
    "trip": dashboard_reads.trip_mark,
    "position": dashboard_reads.position_mark,
    "gate": dashboard_reads.gate_mark,
}


def read_marks(conn: sqlite3.Connection) -> Marks:
    """The current mark of every topic."""
    return {topic: read(conn) for topic, read in READS.items()}


def changed(before: Marks | None, now: Marks) -> list[str]:
    """The topics whose mark moved (every topic on the first look)."""
    return [t for t in now if before is None or before.get(t) != now[t]]


def sse(event: str, data: str) -> bytes:
    """One server-sent event (``data`` holds no newline: it is compact JSON)."""
    return f"event: {event}\ndata: {data}\n\n".encode()
