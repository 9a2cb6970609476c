"""Calibration certificates' rows: one per (device, certificate), valid over
[issued_ms, expires_ms). Written only by controller/calibration.py (with its ledger
decision); read by the ingest (the windows a device's readings are judged against), the
out-gate, the supervision tick and the audit."""

from __future__ import annotations

import sqlite3
from typing import Any

_COLUMNS = ("device_id, certificate_id, accuracy_class, e_kg, issued_ms, expires_ms, "
            "issuer, actor, recorded_ms")
Row = dict[str, Any]


def _dict(row: Any) -> Row:
    return dict(zip(_COLUMNS.split(", "), row, strict=True))


def insert(conn: sqlite3.Connection, row: Row) -> None:
    """A new certificate (inside the caller's transaction); IntegrityError if it exists."""
    conn.execute(f"INSERT INTO calibrations ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)",
                 [row[c] for c in _COLUMNS.split(", ")])


def get(conn: sqlite3.Connection, device_id: str, certificate_id: str) -> Row | None:
    found = conn.execute(f"SELECT {_COLUMNS} FROM calibrations WHERE device_id=? AND "
                         "certificate_id=?", [device_id, certificate_id]).fetchone()
    return None if found is None else _dict(found)


def covering(conn: sqlite3.Connection, device_id: str, time_ms: int) -> Row | None:
    """The certificate valid for ``device_id`` at ``time_ms`` issued last, or None."""
    found = conn.execute(
        f"SELECT {_COLUMNS} FROM calibrations WHERE device_id=? AND issued_ms<=? AND "
        "expires_ms>? ORDER BY issued_ms DESC, certificate_id DESC LIMIT 1",
        [device_id, time_ms, time_ms]).fetchone()
    return None if found is None else _dict(found)


def for_device(conn: sqlite3.Connection, device_id: str) -> list[Row]:
    """Every certificate of a device, oldest issue first."""
    return [_dict(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM calibrations WHERE device_id=? ORDER BY issued_ms, "
        "certificate_id", [device_id])]


def windows(conn: sqlite3.Connection, device_ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    """Device -> its certificates' [issued, expires) windows, for devices that have any.

    A store made at schema 9 before the ``calibrations`` step (the version did not move)
    has no such table: no device is under calibration control there, and ingest goes on."""
    out: dict[str, list[tuple[int, int]]] = {}
    if not device_ids:
        return out
    marks = ",".join("?" * len(device_ids))
    try:
        found = conn.execute(
            f"SELECT device_id, issued_ms, expires_ms FROM calibrations WHERE device_id IN "
            f"({marks}) ORDER BY device_id, issued_ms, expires_ms", sorted(device_ids)
        ).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" not in str(exc):
            raise
        return out
    for dev, issued, expires in found:
        out.setdefault(dev, []).append((int(issued), int(expires)))
    return out


def latest_per_device(conn: sqlite3.Connection) -> list[Row]:
    """Each device's certificate that expires last (what is due is the last one's end)."""
    return [_dict(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM calibrations c WHERE certificate_id = (SELECT "
        "certificate_id FROM calibrations d WHERE d.device_id=c.device_id ORDER BY "
        "expires_ms DESC, certificate_id DESC LIMIT 1) ORDER BY expires_ms, device_id")]


def listing(conn: sqlite3.Connection, *, device_id: str | None = None,
            expires_before_ms: int | None = None, limit: int = 500) -> list[Row]:
    """Certificates by expiry: of one device, or (``expires_before_ms``) each device's
    last certificate when it expires before then (an instrument due for calibration)."""
    if expires_before_ms is not None:
        rows = [r for r in latest_per_device(conn) if r["expires_ms"] < expires_before_ms
                and (device_id is None or r["device_id"] == device_id)]
        return rows[:limit]
    where, args = "", []
    if device_id is not None:
        where, args = " WHERE device_id=?", [device_id]
    return [_dict(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM calibrations{where} ORDER BY expires_ms, device_id, "
        "certificate_id LIMIT ?", [*args, limit])]


def all_calibrations(conn: sqlite3.Connection) -> list[Row]:
    """Every certificate (the audit compares them all)."""
    return [_dict(r) for r in conn.execute(
        f"SELECT {_COLUMNS} FROM calibrations ORDER BY device_id, certificate_id")]


def ever_alerted(conn: sqlite3.Connection, rule: str, device_id: str, code: str,
                 subject: str) -> bool:
    """True when this alert was raised once, whatever became of it since (raise once)."""
    return conn.execute("SELECT 1 FROM alerts WHERE rule=? AND device_id=? AND code=? AND "
                        "subject=? LIMIT 1", [rule, device_id, code, subject]).fetchone() \
        is not None


def device_exists(conn: sqlite3.Connection, device_id: str) -> bool:
    """Whether ``device_id`` is registered (decommissioned ones too: their history stays)."""
    return conn.execute("SELECT 1 FROM devices WHERE device_id=?", [device_id]).fetchone() \
        is not None


def active_alert_subjects(conn: sqlite3.Connection, rule: str, code: str,
                          device_id: str | None = None) -> list[tuple[str, str]]:
    """(device, subject) of the active alerts of ``rule`` and ``code`` (of one device)."""
    sql = "SELECT device_id, subject FROM alerts WHERE rule=? AND code=? AND cleared_ms IS NULL"
    args: list[Any] = [rule, code]
    if device_id is not None:
        sql += " AND device_id=?"
        args.append(device_id)
    return [(str(d), str(s)) for d, s in conn.execute(sql, args)]
