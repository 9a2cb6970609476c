"""Reads behind the trace (controller/trace.py), the EPCIS export and the evidence pack.

Lots, samples, rail passages and blends are projected by other modules whose tables may
not exist in an older store: each read checks the table first and returns nothing when it
is missing, so a trace degrades to "not recorded here" instead of failing.
"""

from __future__ import annotations

import sqlite3
from typing import Any

Row = dict[str, Any]


def _rows(cur: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the store has table ``name`` (another module's schema step may be absent)."""
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                       (name,)).fetchone()
    return row is not None


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _select(conn: sqlite3.Connection, table: str, where: str, args: tuple[Any, ...],
            order: str = "") -> list[Row]:
    if not has_table(conn, table):
        return []
    sql = f"SELECT * FROM {table} WHERE {where}" + (f" ORDER BY {order}" if order else "")
    return _rows(conn.execute(sql, args))


def lot(conn: sqlite3.Connection, lot_id: str) -> Row | None:
    """The ``lots`` row, or None (no such lot, or no lots table)."""
    found = _select(conn, "lots", "lot_id=?", (lot_id,))
    return found[0] if found else None


def lot_events(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """A lot's status history in log order (each row's idx is its ledger entry)."""
    return _select(conn, "lot_events", "lot_id=?", (lot_id,), "idx")


def trip(conn: sqlite3.Connection, trip_id: str) -> Row | None:
    """One trip row, or None."""
    found = _select(conn, "trips", "trip_id=?", (trip_id,))
    return found[0] if found else None


def trips_of_lot(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """Every trip that carried ``lot_id``, in departure order."""
    return _select(conn, "trips", "lot=?", (lot_id,), "departed_ms, trip_id")


def trip_for_weighing(conn: sqlite3.Connection, device_id: str, seq: int) -> Row | None:
    """The trip that left on this out-gate weighing, or None."""
    found = _select(conn, "trips", "gate_device=? AND weighing_seq=?", (device_id, seq))
    return found[0] if found else None


def trip_event_indexes(conn: sqlite3.Connection, trip_id: str) -> list[Row]:
    """A trip's events (idx = its ``trip`` decision's ledger index) in log order."""
    return _select(conn, "trip_events", "trip_id=?", (trip_id,), "idx")


def weighing(conn: sqlite3.Connection, device_id: str, seq: int) -> Row | None:
    """One weighing row, or None."""
    found = _select(conn, "weighings", "device_id=? AND seq=?", (device_id, seq))
    return found[0] if found else None


def gate_decision(conn: sqlite3.Connection, device_id: str, seq: int) -> Row | None:
    """The out-gate decision made for a weighing, or None."""
    found = _select(conn, "gate_decisions", "device_id=? AND weighing_seq=?", (device_id, seq))
    return found[0] if found else None


def holds_of_lot(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """Every hold on a lot, oldest first."""
    return _select(conn, "holds", "lot=?", (lot_id,), "held_ms, id")


def _samples_sql(conn: sqlite3.Connection) -> str | None:
    if not has_table(conn, "samples"):
        return None
    if has_table(conn, "sample_lots"):  # the lot each sample was taken from (a decision)
        return ("SELECT s.*, l.lot_id AS lot_id, l.calibration_valid AS calibration_valid "
                "FROM samples s LEFT JOIN sample_lots l ON l.device_id=s.device_id AND "
                "l.seq=s.seq WHERE l.duplicate_of_seq IS NULL")
    if "lot_id" in _columns(conn, "samples"):
        return "SELECT s.* FROM samples s WHERE 1=1"
    return None


def sample(conn: sqlite3.Connection, device_id: str, seq: int) -> Row | None:
    """One lab sample with the lot it was taken from, or None."""
    sql = _samples_sql(conn)
    if sql is None:
        return None
    found = _rows(conn.execute(sql + " AND s.device_id=? AND s.seq=?", (device_id, seq)))
    return found[0] if found else None


def samples_of_lot(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """A lot's lab samples, oldest first (empty without the LAB tables)."""
    sql = _samples_sql(conn)
    if sql is None:
        return []
    return _rows(conn.execute(sql + " AND lot_id=? ORDER BY s.seq, s.device_id", (lot_id,)))


_CARS = """
    SELECT tc.train_id, tc.idx AS car_idx, tc.initial, tc.number, tc.lot AS lot_id,
           tc.destination, tc.declared_kg, t.status AS train_status,
           t.passage_device AS device_id, t.passage_seq AS seq, t.created_ms, t.released_ms,
           pc.weight_kg, pc.started_ts AS passed_ts
    FROM train_cars tc JOIN trains t ON t.train_id = tc.train_id
    LEFT JOIN passage_cars pc ON pc.device_id = t.passage_device AND pc.seq = t.passage_seq
         AND pc.initial = tc.initial AND pc.number = tc.number AND pc.role = 'car'
    WHERE """


def _cars(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Row]:
    if not (has_table(conn, "train_cars") and has_table(conn, "trains")
            and has_table(conn, "passage_cars")):
        return []
    rows = _rows(conn.execute(_CARS + where + " ORDER BY t.created_ms, tc.train_id, tc.idx",
                              args))
    for r in rows:  # the in-motion weight of the matched passage, else the manifest's
        r["car_id"] = f"{r['initial']}{r['number']}"
        r["net_kg"] = r["weight_kg"] if r["weight_kg"] is not None else r["declared_kg"]
    return rows


def car(conn: sqlite3.Connection, car_id: str) -> list[Row]:
    """The manifest rows of a rail car (AEI initial and number, e.g. DLCX1234) on every
    train it was on, oldest first, with the matched passage's weight."""
    initial = car_id.rstrip("0123456789")
    number = car_id[len(initial):]
    if not initial or not number:
        return []
    return _cars(conn, "tc.initial=? AND tc.number=?", (initial, int(number)))


def cars_of_lot(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """The rail cars loaded with ``lot_id`` (trains' manifests), with the weight and time
    of the passage matched to their train (empty without the rail tables)."""
    return _cars(conn, "tc.lot=?", (lot_id,))


def car_id_of(conn: sqlite3.Connection, row: Row) -> str | None:
    """The car id of a row from ``car`` or ``cars_of_lot``."""
    return row.get("car_id")


def blend_inputs(conn: sqlite3.Connection, blend_lot: str) -> list[Row]:
    """A blend's direct inputs with kg and fraction (empty: not a blend, or no blends)."""
    return _select(conn, "blend_inputs", "blend_lot=?", (blend_lot,), "kg DESC, input_lot")


def blends_containing(conn: sqlite3.Connection, lot_id: str) -> list[Row]:
    """The blend input rows naming ``lot_id``: the blends it went into directly."""
    return _select(conn, "blend_inputs", "input_lot=?", (lot_id,), "blend_lot")


def blend(conn: sqlite3.Connection, blend_lot: str) -> Row | None:
    """One blend row, or None."""
    found = _select(conn, "blends", "blend_lot=?", (blend_lot,))
    return found[0] if found else None


def decisions(conn: sqlite3.Connection, kinds: tuple[str, ...]) -> list[tuple[int, bytes]]:
    """(ledger index, canonical bytes) of every decision of these kinds, in log order (a
    scan: a trace or an export asks it once)."""
    marks = ",".join("?" * len(kinds))
    return [(int(i), bytes(d)) for i, d in conn.execute(
        f"SELECT idx, entry FROM ledger_entries WHERE kind='decision' AND subkind IN ({marks}) "
        "ORDER BY idx", kinds)]
