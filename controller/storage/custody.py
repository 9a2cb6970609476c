"""The ingest's writes: messages with their exact bytes, projected rows, device status,
rejections, watermarks and declared-lost ranges; and the completeness reads.

Called inside one transaction per batch (``commit_batch`` in controller/ingest/writer.py
decides what to write; this module only writes it). Hot path: ``executemany`` per table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from controller.errors import StoreError

# the tables projections may write, with their columns in insert order (schema.py)
PROJECTED_COLUMNS: dict[str, tuple[str, ...]] = {
    "weighings": ("device_id", "seq", "plate", "gross_kg", "tare_kg", "net_kg", "division_kg",
                  "stable_ms", "arrived_ts", "device_ts", "received_ms", "flags_json"),
    "alarms": ("device_id", "seq", "alarm", "state", "detail_json", "device_ts", "received_ms"),
    "lost_ranges": ("device_id", "first_seq", "last_seq", "reason", "declared_by",
                    "declared_ms"),
    "refused_notices": ("device_id", "seq", "count", "kinds_json", "since_ts", "until_ts",
                        "reason", "device_ts", "received_ms"),
    "positions": ("device_id", "seq", "idx", "ts_ms", "lat_e6", "lon_e6", "speed_dkmh",
                  "course_deg", "sats", "hdop_x10", "received_ms"),
    "samples": ("device_id", "seq", "sample_id", "sampled_ts", "moisture_pm", "basis",
                "protein_pm", "impurity_pm", "test_weight_g_per_l", "calibration_id",
                "outlier", "findings_json", "device_ts", "received_ms"),
}
# the rail yard's passages (controller/projections/passages.py)
PROJECTED_COLUMNS["passage_cars"] = (
    "device_id", "seq", "idx", "train", "direction", "started_ts", "ended_ts", "speed_dkmh",
    "axles_counted", "role", "car_seq", "initial", "number", "side", "length_dm", "axles",
    "weight_kg", "raw_hex", "received_ms")
_DEVICE_STATUS = ("status", "boot", "state_seq", "last_seen_ms", "fw_version", "committed_seq",
                  "tele_boot", "tele_seq", "health_json", "health_ms", "clock_offset_ms")


def load_devices(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The rows of the given devices that are still in service, by id."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    marks = ",".join("?" * len(wanted))
    cur = conn.execute(f"SELECT * FROM devices WHERE device_id IN ({marks}) AND "
                       "decommissioned_ms IS NULL", wanted)
    names = [d[0] for d in cur.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def stored_digest(conn: sqlite3.Connection, device_id: str, seq: int) -> str | None:
    """The SHA-256 of the message stored under (device, seq), or None."""
    row = conn.execute("SELECT sha256 FROM messages WHERE device_id=? AND seq=?",
                       (device_id, seq)).fetchone()
    return None if row is None else str(row[0])


def insert_messages(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(device_id, seq, boot, kind, device_ts, received_ms, topic, payload, sha256,
    device_signed) rows."""
    conn.executemany("INSERT INTO messages (device_id, seq, boot, kind, device_ts, "
                     "received_ms, topic, payload, sha256, device_signed) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?)", rows)


def insert_projected(conn: sqlite3.Connection,
                     rows: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Rows made by projections, by table; a table or column not in the schema is refused."""
    for table, items in rows.items():
        columns = PROJECTED_COLUMNS.get(table)
        if columns is None:
            raise StoreError(f"projection wrote to {table!r}, which is not a projected table")
        if not items:
            continue
        for item in items:
            if set(item) != set(columns):
                raise StoreError(f"projection row for {table} has columns {sorted(item)}, "
                                 f"the table has {sorted(columns)}")
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                         f"({', '.join('?' * len(columns))})",
                         [tuple(item[c] for c in columns) for item in items])


def insert_health(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(device_id, boot, seq, device_ts, received_ms, body_json) rows."""
    conn.executemany("INSERT INTO health (device_id, boot, seq, device_ts, received_ms, "
                     "body_json) VALUES (?,?,?,?,?,?)", rows)


def insert_rejections(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """(received_ms, topic, device_id, reason, detail, size, excerpt_hex) rows."""
    conn.executemany("INSERT INTO rejections (received_ms, topic, device_id, reason, detail, "
                     "size, excerpt_hex) VALUES (?,?,?,?,?,?,?)", rows)


def update_device_status(conn: sqlite3.Connection, devices: Iterable[Mapping[str, Any]]) -> None:
    """Write back the status columns the batch changed (link, boot, health, watermark)."""
    conn.executemany(
        f"UPDATE devices SET {', '.join(c + '=?' for c in _DEVICE_STATUS)} WHERE device_id=?",
        [(*(d[c] for c in _DEVICE_STATUS), d["device_id"]) for d in devices])


def passed_seq(conn: sqlite3.Connection, device_id: str) -> int:
    """The highest seq the device is known to have numbered: its highest stored event, or
    ``next_seq - 1`` from its latest health sample, whichever is higher (0: none yet).

    Nothing above it can be committed, declared lost or acknowledged: an ack beyond it
    would tell the device to drop events it has not made yet."""
    row = conn.execute("SELECT max(seq) FROM messages WHERE device_id=?",
                       (device_id,)).fetchone()
    stored = int(row[0]) if row and row[0] is not None else 0
    row = conn.execute("SELECT json_extract(health_json, '$.next_seq') FROM devices WHERE "
                       "device_id=?", (device_id,)).fetchone()
    reported = row[0] if row else None
    numbered = reported - 1 if isinstance(reported, int) and reported > 0 else 0
    return max(stored, numbered)


def advance(conn: sqlite3.Connection, device_id: str, committed: int) -> int:
    """Move the contiguous watermark forward over stored seqs and declared-lost ranges,
    never past ``passed_seq`` (a lost range declared beyond it, in a store written before
    that rule, is not followed past what the device has numbered)."""
    passed = passed_seq(conn, device_id)
    if committed > passed:
        return passed
    return min(_advance(conn, device_id, committed), passed)


def _advance(conn: sqlite3.Connection, device_id: str, committed: int) -> int:
    while True:
        rows = conn.execute(
            "SELECT seq FROM messages WHERE device_id=? AND seq>? ORDER BY seq LIMIT 1000",
            (device_id, committed),
        ).fetchall()
        for (seq,) in rows:
            if seq == committed + 1:
                committed = seq
                continue
            lost = _lost_end(conn, device_id, committed + 1)
            if lost is None:
                return committed
            committed = max(committed, lost)
            break  # query again from past the lost range
        else:
            if len(rows) == 1000:
                continue
            lost = _lost_end(conn, device_id, committed + 1)
            if lost is None:
                return committed
            committed = lost


def _lost_end(conn: sqlite3.Connection, device_id: str, seq: int) -> int | None:
    """The last seq of a declared-lost range that covers ``seq``, or None."""
    row = conn.execute("SELECT max(last_seq) FROM lost_ranges WHERE device_id=? AND "
                       "first_seq<=? AND last_seq>=?", (device_id, seq, seq)).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def add_lost_range(conn: sqlite3.Connection, device_id: str, first: int, last: int, *,
                   reason: str, actor: str, now_ms: int) -> int:
    """Record seqs [first, last] as never to arrive; return the device's new watermark."""
    conn.execute("INSERT INTO lost_ranges (device_id, first_seq, last_seq, reason, "
                 "declared_by, declared_ms) VALUES (?,?,?,?,?,?)",
                 (device_id, first, last, reason, actor, now_ms))
    row = conn.execute("SELECT committed_seq FROM devices WHERE device_id=?",
                       (device_id,)).fetchone()
    committed = advance(conn, device_id, int(row[0]))
    conn.execute("UPDATE devices SET committed_seq=? WHERE device_id=?", (committed, device_id))
    return committed


def missing_ranges(conn: sqlite3.Connection, device_id: str, committed: int,
                   limit: int = 100) -> list[tuple[int, int]]:
    """Seq ranges above the watermark that were never received nor declared lost."""
    out: list[tuple[int, int]] = []
    expect = committed + 1
    for (seq,) in conn.execute("SELECT seq FROM messages WHERE device_id=? AND seq>? "
                               "ORDER BY seq", (device_id, committed)):
        while seq > expect and len(out) < limit:
            lost = _lost_end(conn, device_id, expect)
            if lost is not None:
                expect = lost + 1
                continue
            nxt = conn.execute("SELECT min(first_seq) FROM lost_ranges WHERE device_id=? AND "
                               "first_seq>? AND first_seq<?", (device_id, expect, seq)).fetchone()
            end = (int(nxt[0]) if nxt and nxt[0] is not None else seq) - 1
            out.append((expect, end))
            expect = end + 1
        expect = max(expect, seq + 1)
    return out


def refused_total(conn: sqlite3.Connection, device_id: str) -> int:
    """How many custody events the device reported it refused (never stored).

    A notice sent again after a power cut (same span and count, a new seq) counts once."""
    row = conn.execute("SELECT coalesce(sum(count), 0) FROM (SELECT DISTINCT since_ts, "
                       "until_ts, count, reason FROM refused_notices WHERE device_id=?)",
                       (device_id,)).fetchone()
    return int(row[0])


def lost_ranges(conn: sqlite3.Connection, device_id: str) -> list[tuple[int, int]]:
    """Declared-lost (first, last) seq ranges of a device, in order."""
    return [(int(r[0]), int(r[1])) for r in conn.execute(
        "SELECT first_seq, last_seq FROM lost_ranges WHERE device_id=? ORDER BY first_seq",
        (device_id,))]
