"""Lab samples' rows: ``samples`` (projected from ``sample`` events, one per event) and
``sample_lots`` (the controller's ``sample_lot`` decision per sample: the lot unloading at
its sampling time, whether the analyzer's calibration covered it, and whether it repeats
a sample id the device already sent)."""

from __future__ import annotations

import sqlite3
from typing import Any

Row = dict[str, Any]

SAMPLE_COLUMNS = ("device_id", "seq", "sample_id", "sampled_ts", "moisture_pm", "basis",
                  "protein_pm", "impurity_pm", "test_weight_g_per_l", "calibration_id",
                  "outlier", "findings_json", "device_ts", "received_ms")
LOT_COLUMNS = ("device_id", "seq", "sample_id", "lot_id", "calibration_valid",
               "duplicate_of_seq", "decided_ms")


def first_seq(conn: sqlite3.Connection, device_id: str, sample_id: str,
              before_seq: int) -> int | None:
    """The seq of the first event of ``device_id`` carrying ``sample_id`` before
    ``before_seq`` (a result re-sent after a power cut), or None."""
    row = conn.execute("SELECT MIN(seq) FROM samples WHERE device_id=? AND sample_id=? "
                       "AND seq<?", [device_id, sample_id, before_seq]).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def insert_lot(conn: sqlite3.Connection, row: Row) -> None:
    """One ``sample_lots`` row (inside the caller's transaction); a repeat is ignored."""
    conn.execute(f"INSERT OR IGNORE INTO sample_lots ({', '.join(LOT_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(LOT_COLUMNS))})", [row[c] for c in LOT_COLUMNS])


_SELECT = ("SELECT s.device_id, s.seq, s.sample_id, s.sampled_ts, s.moisture_pm, s.basis, "
           "s.protein_pm, s.impurity_pm, s.test_weight_g_per_l, s.calibration_id, s.outlier, "
           "s.findings_json, s.device_ts, s.received_ms, l.lot_id, l.calibration_valid "
           "FROM samples s LEFT JOIN sample_lots l ON l.device_id=s.device_id AND l.seq=s.seq "
           "WHERE l.duplicate_of_seq IS NULL")
_NAMES = (*SAMPLE_COLUMNS, "lot_id", "calibration_valid")


def list_samples(conn: sqlite3.Connection, *, lot: str | None = None,
                 device_id: str | None = None, limit: int = 100) -> list[Row]:
    """Samples newest first (by sampling time), a re-sent result once."""
    sql = _SELECT
    args: list[Any] = []
    if lot is not None:
        sql += " AND l.lot_id=?"
        args.append(lot)
    if device_id is not None:
        sql += " AND s.device_id=?"
        args.append(device_id)
    sql += " ORDER BY s.sampled_ts DESC, s.device_id, s.seq DESC LIMIT ?"
    args.append(limit)
    return [dict(zip(_NAMES, r, strict=True)) for r in conn.execute(sql, args).fetchall()]


def all_sample_lots(conn: sqlite3.Connection) -> list[Row]:
    """Every ``sample_lots`` row, for the audit."""
    cur = conn.execute(f"SELECT {', '.join(LOT_COLUMNS)} FROM sample_lots ORDER BY device_id, seq")
    return [dict(zip(LOT_COLUMNS, r, strict=True)) for r in cur.fetchall()]


def lots_at(conn: sqlite3.Connection, device_id: str, seq: int) -> list[Row]:
    """The ``sample_lots`` row of one event (none or one), for the audit of new entries."""
    cur = conn.execute(f"SELECT {', '.join(LOT_COLUMNS)} FROM sample_lots WHERE device_id=? "
                       "AND seq=?", [device_id, seq])
    return [dict(zip(LOT_COLUMNS, r, strict=True)) for r in cur.fetchall()]
