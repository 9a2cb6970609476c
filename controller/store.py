"""SQLite store: schema (through sqlite-utils) and connections in WAL mode.

The hot ingest path writes with ``executemany`` in one transaction per batch
(docs/ARCHITECTURE.md, Pitfalls: sqlite-utils' ``insert_all`` is about half as fast); the
schema, the registry and the API's reads use sqlite-utils.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import sqlite_utils

from controller import ledger

SCHEMA_VERSION = 2  # 2: device_keys, key_rotations, broker_accounts


def now_ms() -> int:
    """Wall-clock time in ms since the Unix epoch (the controller's receipt clock)."""
    return time.time_ns() // 1_000_000


def connect(path: Path | str) -> sqlite_utils.Database:
    """Open the store (creating and migrating it if needed) with WAL and a busy timeout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    db = sqlite_utils.Database(conn)
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> None:
    """Create every table and index that does not exist yet (idempotent)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if "devices" not in db.table_names():
        db.table("devices").create(
            {
                "device_id": str, "site": str, "kind": str, "description": str,
                "key_id": str, "secret_hex": str, "mqtt_password_hash": str,
                "created_ms": int, "status": str, "boot": int, "last_seen_ms": int,
                "fw_version": str, "committed_seq": int, "tele_boot": int, "tele_seq": int,
                "state_seq": int,
                "health_json": str, "health_ms": int, "clock_offset_ms": int,
                "driver_json": str,
            },
            pk="device_id",
            defaults={"status": "never", "committed_seq": 0, "boot": -1,
                      "tele_boot": -1, "tele_seq": -1, "state_seq": -1},
            not_null={"site", "kind", "key_id", "secret_hex"},
        )
    if "messages" not in db.table_names():
        db.table("messages").create(
            {"device_id": str, "seq": int, "boot": int, "kind": str, "device_ts": int,
             "received_ms": int, "topic": str, "payload": bytes, "sha256": str},
            pk=("device_id", "seq"),
        )
    if "weighings" not in db.table_names():
        db.table("weighings").create(
            {"device_id": str, "seq": int, "plate": str, "gross_kg": int, "tare_kg": int,
             "net_kg": int, "division_kg": int, "stable_ms": int, "arrived_ts": int,
             "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"),
        )
        db.table("weighings").create_index(["plate"])
        db.table("weighings").create_index(["device_ts"])
    if "alarms" not in db.table_names():
        db.table("alarms").create(
            {"device_id": str, "seq": int, "alarm": str, "state": str, "detail_json": str,
             "device_ts": int, "received_ms": int},
            pk=("device_id", "seq"),
        )
    if "health" not in db.table_names():
        db.table("health").create(
            {"id": int, "device_id": str, "boot": int, "seq": int, "device_ts": int,
             "received_ms": int, "body_json": str},
            pk="id",
        )
        db.table("health").create_index(["device_id", "received_ms"])
    if "rejections" not in db.table_names():
        db.table("rejections").create(
            {"id": int, "received_ms": int, "topic": str, "device_id": str, "reason": str,
             "detail": str, "size": int, "excerpt_hex": str},
            pk="id",
        )
        db.table("rejections").create_index(["reason"])
    if "api_tokens" not in db.table_names():
        db.table("api_tokens").create(
            {"token_sha256": str, "name": str, "role": str, "created_ms": int},
            pk="token_sha256",
        )
    if "lost_ranges" not in db.table_names():
        # seqs a device will never deliver (declared by the device or by an admin): the
        # watermark passes over them and completeness reports them as lost, not missing
        db.table("lost_ranges").create(
            {"id": int, "device_id": str, "first_seq": int, "last_seq": int, "reason": str,
             "declared_by": str, "declared_ms": int},
            pk="id",
        )
        db.table("lost_ranges").create_index(["device_id", "first_seq"])
    _migrate_security(db, version)
    ledger.migrate(db)  # ledger_* tables (controller/ledger/store.py)
    if version != SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _migrate_security(db: sqlite_utils.Database, version: int) -> None:
    """Key ring, key rotation record and broker accounts (schema 2)."""
    if "device_keys" not in db.table_names():
        # every HMAC key a device has had; devices.key_id/secret_hex stay its newest key.
        # valid_until_ms (controller clock) is set when a rotation retires the key
        db.table("device_keys").create(
            {"device_id": str, "key_id": str, "secret_hex": str, "created_ms": int,
             "valid_until_ms": int},
            pk=("device_id", "key_id"), not_null={"secret_hex", "created_ms"},
        )
    if version < 2:  # a store from schema 1: each device's current key joins the ring
        db.execute("INSERT OR IGNORE INTO device_keys (device_id, key_id, secret_hex, created_ms) "
                   "SELECT device_id, key_id, secret_hex, coalesce(created_ms, 0) FROM devices")
    if "key_rotations" not in db.table_names():
        db.table("key_rotations").create(
            {"id": int, "device_id": str, "old_key_id": str, "new_key_id": str,
             "rotated_ms": int, "old_valid_until_ms": int, "actor": str},
            pk="id",
        )
        db.table("key_rotations").create_index(["device_id"])
    if "broker_accounts" not in db.table_names():
        # broker logins that are not devices (the controller's own). The password is kept
        # in clear because the controller must log in with it, like the HMAC secrets above
        db.table("broker_accounts").create(
            {"user": str, "role": str, "password": str, "password_hash": str,
             "created_ms": int},
            pk="user",
        )
