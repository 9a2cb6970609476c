"""Device registry: provisioning, per-device secrets, and the device config file.

Each device gets its own HMAC key (32 random bytes, key id ``k1``; a rotation gives it
``k2``, ``k3``… and retires the older keys after a grace period) and its own
broker password; the controller keeps the HMAC secret (it must, to check
signatures: protect the database file) and only a salted hash of the broker
password, in Mosquitto's own ``$7$`` format so that the broker's password file can
be generated from the registry.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any

import sqlite_utils

from controller import ledger
from controller.errors import DeviceExists, UnknownDevice
from controller.ingest.verify import DeviceKey
from controller.store import now_ms
from protocols import topics

DEVICE_KINDS = ("weighbridge", "gps", "rail_reader", "lab")


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    """Hash a password the way ``mosquitto_passwd`` does (PBKDF2-SHA512, ``$7$``)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def provision(
    db: sqlite_utils.Database,
    *,
    device_id: str,
    site: str,
    kind: str,
    driver: dict[str, Any] | None = None,
    description: str = "",
    actor: str = "cli",
) -> dict[str, Any]:
    """Register a device; return its row plus the one-time ``mqtt_password``."""
    topics.check_id(device_id, "device id")
    topics.check_id(site, "site")
    if kind not in DEVICE_KINDS:
        raise ValueError(f"unknown device kind {kind!r}: use one of {', '.join(DEVICE_KINDS)}")
    if db["devices"].count_where("device_id = ?", [device_id]):
        raise DeviceExists(
            f"device {device_id!r} is already registered; pick another id or rotate its key"
        )
    password = secrets.token_urlsafe(24)
    row = {
        "device_id": device_id,
        "site": site,
        "kind": kind,
        "description": description,
        "key_id": "k1",
        "secret_hex": secrets.token_bytes(32).hex(),
        "mqtt_password_hash": mosquitto_hash(password),
        "created_ms": now_ms(),
        "driver_json": json.dumps(driver or {}, ensure_ascii=False),
    }
    with ledger.transaction(db.conn) as conn:  # the registry and the ledger change together
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO devices ({cols}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
        conn.execute("INSERT INTO device_keys (device_id, key_id, secret_hex, created_ms) "
                     "VALUES (?,?,?,?)", [device_id, row["key_id"], row["secret_hex"],
                                          row["created_ms"]])
        ledger.append_decision(conn, "provisioning", actor, {
            "device_id": device_id, "site": site, "kind": kind, "key_id": row["key_id"],
            "driver": driver or {}}, int(str(row["created_ms"])))
    return {**get(db, device_id), "mqtt_password": password}


def get(db: sqlite_utils.Database, device_id: str) -> dict[str, Any]:
    """One device's row, or UnknownDevice."""
    rows = list(db["devices"].rows_where("device_id = ?", [device_id]))
    if not rows:
        raise UnknownDevice(f"no device {device_id!r}: list devices with `portwatch device list`")
    return rows[0]


def secrets_by_device(db: sqlite_utils.Database) -> dict[str, dict[str, DeviceKey]]:
    """{device_id: {key_id: key}} for every registered device (the ingest's key ring)."""
    ring: dict[str, dict[str, DeviceKey]] = {}
    for row in db.query("SELECT device_id, key_id, secret_hex, valid_until_ms FROM device_keys "
                        "WHERE device_id IN (SELECT device_id FROM devices)"):
        ring.setdefault(row["device_id"], {})[row["key_id"]] = DeviceKey(
            bytes.fromhex(row["secret_hex"]), row["valid_until_ms"])
    return ring


def keys_stamp(db: sqlite_utils.Database) -> tuple[int, int, int]:
    """Changes whenever a key is added, removed or retired: when to reload the key ring."""
    row = db.execute("SELECT count(*), coalesce(max(created_ms), 0), "
                     "coalesce(sum(valid_until_ms), 0) FROM device_keys").fetchone()
    return int(row[0]), int(row[1]), int(row[2])


def key_number(key_id: str) -> int:
    """The n of key id ``k<n>`` (0 for any other form), so that k10 comes after k9."""
    digits = key_id[1:]
    return int(digits) if key_id[:1] == "k" and digits.isdigit() else 0


def newest_key(keys: Mapping[str, DeviceKey]) -> tuple[str, DeviceKey]:
    """The key a device was given last (the one the controller signs its acks with)."""
    key_id = max(keys, key=lambda k: (keys[k].valid_until_ms is None, key_number(k)))
    return key_id, keys[key_id]


def rotate_key(db: sqlite_utils.Database, device_id: str, *, grace_s: float,
               actor: str = "cli", now: int | None = None) -> dict[str, Any]:
    """Give a device a new HMAC key; its older keys stay valid for ``grace_s`` more seconds.

    Returns ``device_id``, the new ``key_id`` and ``secret_hex`` (shown once: put them in
    the device's config), ``old_key_id``, ``old_valid_until_ms`` and ``rotated_ms``.
    Every rotation is recorded in ``key_rotations`` with its ``actor``.
    """
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0, not {grace_s}")
    now = now if now is not None else now_ms()
    until = now + round(grace_s * 1000)
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        device = get(db, device_id)
        taken = [r[0] for r in conn.execute("SELECT key_id FROM device_keys WHERE device_id=?",
                                            [device_id])]
        new_id = f"k{max(map(key_number, taken), default=0) + 1}"
        secret_hex = secrets.token_bytes(32).hex()
        # a key retired earlier keeps its earlier end: a rotation never extends a key's life
        conn.execute("UPDATE device_keys SET valid_until_ms=min(coalesce(valid_until_ms, ?), ?) "
                     "WHERE device_id=?", [until, until, device_id])
        conn.execute("INSERT INTO device_keys (device_id, key_id, secret_hex, created_ms) "
                     "VALUES (?,?,?,?)", [device_id, new_id, secret_hex, now])
        conn.execute("UPDATE devices SET key_id=?, secret_hex=? WHERE device_id=?",
                     [new_id, secret_hex, device_id])
        conn.execute("INSERT INTO key_rotations (device_id, old_key_id, new_key_id, rotated_ms, "
                     "old_valid_until_ms, actor) VALUES (?,?,?,?,?,?)",
                     [device_id, device["key_id"], new_id, now, until, actor])
        ledger.append_decision(conn, "key_rotation", actor, {
            "device_id": device_id, "old_key_id": device["key_id"], "new_key_id": new_id,
            "old_valid_until_ms": until}, now)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return {"device_id": device_id, "key_id": new_id, "secret_hex": secret_hex,
            "old_key_id": device["key_id"], "old_valid_until_ms": until, "rotated_ms": now}


def with_key(config: dict[str, Any], rotation: dict[str, Any]) -> dict[str, Any]:
    """A device's config file with the new key of ``rotation`` (broker login unchanged)."""
    if config.get("device_id") != rotation["device_id"]:
        raise ValueError(f"that config is for {config.get('device_id')!r}, "
                         f"not {rotation['device_id']!r}")
    return {**config, "key_id": rotation["key_id"], "secret_hex": rotation["secret_hex"]}


def device_config(
    device: dict[str, Any],
    *,
    mqtt_password: str,
    broker_host: str,
    broker_port: int,
    data_dir: str,
) -> dict[str, Any]:
    """The config file the agent boots with (secret included: write it mode 0600)."""
    return {
        "device_id": device["device_id"],
        "site": device["site"],
        "kind": device["kind"],
        "key_id": device["key_id"],
        "secret_hex": device["secret_hex"],
        "mqtt": {
            "host": broker_host,
            "port": broker_port,
            "user": device["device_id"],
            "password": mqtt_password,
            "keepalive": 30,
        },
        "driver": json.loads(device["driver_json"] or "{}"),
        "health_interval_s": 10,
        "data_dir": data_dir,
    }
