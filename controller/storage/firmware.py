"""Rows of firmware bundles, rollouts and each device's place in a rollout.

Tables are made here on first use (``ensure``, idempotent ``CREATE TABLE IF NOT EXISTS``):
every function that touches them calls it, so a store from before over-the-air updates
gains them with its first publish and reads see none until then.

``fw_bundles``: (kind, version) -> the bundle's directory on the controller host, its
manifest's SHA-256, its total size. ``fw_rollouts``: one per ``portwatch firmware
rollout``, ``state`` running | done | stopped. ``fw_rollout_devices``: its devices, with
their stage (1 first, 2 the rest), state (pending, downloading, switched, healthy,
rolled_back, failed), command, download token's SHA-256, and when it switched.
"""

from __future__ import annotations

import sqlite3
from typing import Any

_DDL = (
    "CREATE TABLE IF NOT EXISTS fw_bundles (kind TEXT NOT NULL, version TEXT NOT NULL, "
    "path TEXT NOT NULL, manifest_sha256 TEXT NOT NULL, size INTEGER NOT NULL, "
    "files INTEGER NOT NULL, published_ms INTEGER NOT NULL, published_by TEXT NOT NULL, "
    "PRIMARY KEY (kind, version))",
    "CREATE TABLE IF NOT EXISTS fw_rollouts (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
    "version TEXT NOT NULL, url TEXT NOT NULL, state TEXT NOT NULL, healthy_s INTEGER NOT "
    "NULL, trial_s INTEGER NOT NULL, created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, "
    "updated_ms INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '')",
    "CREATE TABLE IF NOT EXISTS fw_rollout_devices (rollout_id INTEGER NOT NULL, "
    "device_id TEXT NOT NULL, stage INTEGER NOT NULL, state TEXT NOT NULL, "
    "command_id TEXT, token_sha256 TEXT, switched_ms INTEGER, updated_ms INTEGER NOT NULL, "
    "detail TEXT NOT NULL DEFAULT '', PRIMARY KEY (rollout_id, device_id))",
    "CREATE INDEX IF NOT EXISTS fw_rollout_devices_token ON fw_rollout_devices "
    "(token_sha256)",
)
DEVICE_COLUMNS = ("rollout_id", "device_id", "stage", "state", "command_id", "token_sha256",
                  "switched_ms", "updated_ms", "detail")
ROLLOUT_COLUMNS = ("id", "kind", "version", "url", "state", "healthy_s", "trial_s",
                   "created_ms", "created_by", "updated_ms", "detail")
BUNDLE_COLUMNS = ("kind", "version", "path", "manifest_sha256", "size", "files",
                  "published_ms", "published_by")


def ensure(conn: sqlite3.Connection) -> None:
    """Create the tables if they are not there yet."""
    for sql in _DDL:
        conn.execute(sql)


def _rows(conn: sqlite3.Connection, cols: tuple[str, ...], sql: str,
          args: list[Any]) -> list[dict[str, Any]]:
    ensure(conn)
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(sql, args)]


def put_bundle(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    ensure(conn)
    conn.execute(f"INSERT OR REPLACE INTO fw_bundles ({', '.join(BUNDLE_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(BUNDLE_COLUMNS))})", [row[c] for c in BUNDLE_COLUMNS])


def bundle(conn: sqlite3.Connection, kind: str, version: str) -> dict[str, Any] | None:
    found = _rows(conn, BUNDLE_COLUMNS, f"SELECT {', '.join(BUNDLE_COLUMNS)} FROM fw_bundles "
                  "WHERE kind=? AND version=?", [kind, version])
    return found[0] if found else None


def bundles(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return _rows(conn, BUNDLE_COLUMNS, f"SELECT {', '.join(BUNDLE_COLUMNS)} FROM fw_bundles "
                 "ORDER BY kind, published_ms DESC", [])


def add_rollout(conn: sqlite3.Connection, row: dict[str, Any]) -> int:
    ensure(conn)
    cols = ROLLOUT_COLUMNS[1:]
    cur = conn.execute(f"INSERT INTO fw_rollouts ({', '.join(cols)}) VALUES "
                       f"({', '.join('?' * len(cols))})", [row[c] for c in cols])
    return int(cur.lastrowid or 0)


def rollouts(conn: sqlite3.Connection, state: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE state=?", [state]) if state else ("", [])
    return _rows(conn, ROLLOUT_COLUMNS, f"SELECT {', '.join(ROLLOUT_COLUMNS)} FROM fw_rollouts "
                 f"{where} ORDER BY id DESC", args)


def rollout(conn: sqlite3.Connection, rollout_id: int) -> dict[str, Any] | None:
    found = _rows(conn, ROLLOUT_COLUMNS, f"SELECT {', '.join(ROLLOUT_COLUMNS)} FROM "
                  "fw_rollouts WHERE id=?", [rollout_id])
    return found[0] if found else None


def set_rollout(conn: sqlite3.Connection, rollout_id: int, state: str, detail: str,
                now_ms: int) -> None:
    conn.execute("UPDATE fw_rollouts SET state=?, detail=?, updated_ms=? WHERE id=?",
                 [state, detail, now_ms, rollout_id])


def add_device(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    ensure(conn)
    conn.execute(f"INSERT INTO fw_rollout_devices ({', '.join(DEVICE_COLUMNS)}) VALUES "
                 f"({', '.join('?' * len(DEVICE_COLUMNS))})",
                 [row.get(c, "" if c == "detail" else None) for c in DEVICE_COLUMNS])


def devices(conn: sqlite3.Connection, rollout_id: int) -> list[dict[str, Any]]:
    return _rows(conn, DEVICE_COLUMNS, f"SELECT {', '.join(DEVICE_COLUMNS)} FROM "
                 "fw_rollout_devices WHERE rollout_id=? ORDER BY stage, device_id", [rollout_id])


def by_token(conn: sqlite3.Connection, token_sha256: str) -> dict[str, Any] | None:
    found = _rows(conn, DEVICE_COLUMNS, f"SELECT {', '.join(DEVICE_COLUMNS)} FROM "
                  "fw_rollout_devices WHERE token_sha256=?", [token_sha256])
    return found[0] if found else None


def set_device(conn: sqlite3.Connection, rollout_id: int, device_id: str, **values: Any) -> None:
    sets = ", ".join(f"{k}=?" for k in values)
    conn.execute(f"UPDATE fw_rollout_devices SET {sets} WHERE rollout_id=? AND device_id=?",
                 [*values.values(), rollout_id, device_id])


def in_service_drivers(conn: sqlite3.Connection) -> list[tuple[str, str | None]]:
    """(device_id, driver_json) of every device not decommissioned, by device id."""
    return [(device_id, driver) for device_id, driver in conn.execute(
        "SELECT device_id, driver_json FROM devices WHERE decommissioned_ms IS NULL "
        "ORDER BY device_id")]


def clock_offset_ms(conn: sqlite3.Connection, device_id: str) -> int | None:
    """The device's clock offset, or None when unknown or the device is not registered."""
    row = conn.execute("SELECT clock_offset_ms FROM devices WHERE device_id=?",
                       [device_id]).fetchone()
    return row[0] if row else None


def reported_firmware(conn: sqlite3.Connection,
                      device_id: str) -> tuple[str | None, int | None]:
    """(fw_version, health_ms) the device last reported, (None, None) if not registered."""
    row = conn.execute("SELECT fw_version, health_ms FROM devices WHERE device_id=?",
                       [device_id]).fetchone()
    return (row[0], row[1]) if row else (None, None)
