"""The device registry's rows: devices, their key ring, key rotations, decommissioning."""

from __future__ import annotations

import sqlite3
from typing import Any

from controller.keyring import DeviceKey
from controller.storage.database import Store


def exists(store: Store, device_id: str) -> bool:
    """Whether ``device_id`` was ever registered (decommissioned devices included)."""
    return store.conn.execute("SELECT 1 FROM devices WHERE device_id=?",
                              [device_id]).fetchone() is not None


def insert(conn: sqlite3.Connection, row: dict[str, Any]) -> None:
    """A new device row and its first key (inside the caller's transaction)."""
    cols = ", ".join(row)
    conn.execute(f"INSERT INTO devices ({cols}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))
    insert_key(conn, row["device_id"], row["key_id"], row["secret_hex"], row["created_ms"])


def insert_key(conn: sqlite3.Connection, device_id: str, key_id: str, secret_hex: str,
               created_ms: int) -> None:
    conn.execute("INSERT INTO device_keys (device_id, key_id, secret_hex, created_ms) "
                 "VALUES (?,?,?,?)", [device_id, key_id, secret_hex, created_ms])


def get(store: Store, device_id: str) -> dict[str, Any] | None:
    """One device's row, or None."""
    rows = list(store.db["devices"].rows_where("device_id = ?", [device_id]))
    return rows[0] if rows else None


def all_rows(store: Store, *, site: str | None = None) -> list[dict[str, Any]]:
    """Every device row (of one site, when given), by id."""
    if site is None:
        return list(store.db["devices"].rows_where(order_by="device_id"))
    return list(store.db["devices"].rows_where("site = ?", [site], order_by="device_id"))


def decommissioned_ids(store: Store) -> set[str]:
    return {str(r[0]) for r in store.conn.execute(
        "SELECT device_id FROM devices WHERE decommissioned_ms IS NOT NULL")}


def committed_seq(store: Store, device_id: str) -> int:
    row = store.conn.execute("SELECT committed_seq FROM devices WHERE device_id=?",
                             [device_id]).fetchone()
    return int(row[0]) if row else 0


def key_ids(conn: sqlite3.Connection, device_id: str) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT key_id FROM device_keys WHERE device_id=?",
                                            [device_id])]


def key_ring(store: Store) -> dict[str, dict[str, DeviceKey]]:
    """{device_id: {key_id: key}} for every registered, not decommissioned device."""
    ring: dict[str, dict[str, DeviceKey]] = {}
    for row in store.db.query(
            "SELECT device_id, key_id, secret_hex, valid_until_ms FROM device_keys "
            "WHERE device_id IN (SELECT device_id FROM devices "
            "WHERE decommissioned_ms IS NULL)"):
        ring.setdefault(row["device_id"], {})[row["key_id"]] = DeviceKey(
            bytes.fromhex(row["secret_hex"]), row["valid_until_ms"])
    return ring


def keys_stamp(store: Store) -> tuple[int, int, int, int]:
    """Changes whenever a key is added, removed or retired, or a device decommissioned."""
    row = store.conn.execute(
        "SELECT count(*), coalesce(max(created_ms), 0), coalesce(sum(valid_until_ms), 0), "
        "(SELECT count(*) FROM devices WHERE decommissioned_ms IS NOT NULL) "
        "FROM device_keys").fetchone()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def retire_keys(conn: sqlite3.Connection, device_id: str, until_ms: int) -> None:
    """End every key of a device at ``until_ms``; a key already ending earlier keeps its end."""
    conn.execute("UPDATE device_keys SET valid_until_ms=min(coalesce(valid_until_ms, ?), ?) "
                 "WHERE device_id=?", [until_ms, until_ms, device_id])


def set_device_pub(conn: sqlite3.Connection, device_id: str, pub: str) -> None:
    """Register the device's public key (inside the caller's transaction, with its ledger
    decision)."""
    conn.execute("UPDATE devices SET device_pub=? WHERE device_id=?", [pub, device_id])


def set_current_key(conn: sqlite3.Connection, device_id: str, key_id: str,
                    secret_hex: str) -> None:
    conn.execute("UPDATE devices SET key_id=?, secret_hex=? WHERE device_id=?",
                 [key_id, secret_hex, device_id])


def record_rotation(conn: sqlite3.Connection, device_id: str, old_key_id: str, new_key_id: str,
                    rotated_ms: int, old_valid_until_ms: int, actor: str) -> None:
    conn.execute("INSERT INTO key_rotations (device_id, old_key_id, new_key_id, rotated_ms, "
                 "old_valid_until_ms, actor) VALUES (?,?,?,?,?,?)",
                 [device_id, old_key_id, new_key_id, rotated_ms, old_valid_until_ms, actor])


def mark_decommissioned(conn: sqlite3.Connection, device_id: str, now_ms: int,
                        actor: str) -> None:
    conn.execute("UPDATE devices SET decommissioned_ms=?, decommissioned_by=?, "
                 "status='decommissioned' WHERE device_id=?", [now_ms, actor, device_id])
