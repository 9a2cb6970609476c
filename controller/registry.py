"""Device registry: provisioning, per-device secrets, and the device config file.

Each device gets its own HMAC key (32 random bytes, key id ``k1``) and its own
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
from typing import Any

import sqlite_utils

from controller.errors import DeviceExists, UnknownDevice
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
    db.table("devices").insert(row)
    return {**get(db, device_id), "mqtt_password": password}


def get(db: sqlite_utils.Database, device_id: str) -> dict[str, Any]:
    """One device's row, or UnknownDevice."""
    rows = list(db["devices"].rows_where("device_id = ?", [device_id]))
    if not rows:
        raise UnknownDevice(f"no device {device_id!r}: list devices with `portwatch device list`")
    return rows[0]


def secrets_by_device(db: sqlite_utils.Database) -> dict[str, dict[str, bytes]]:
    """{device_id: {key_id: secret}} for every registered device (the ingest's key ring)."""
    ring: dict[str, dict[str, bytes]] = {}
    for row in db.query("SELECT device_id, key_id, secret_hex FROM devices"):
        ring.setdefault(row["device_id"], {})[row["key_id"]] = bytes.fromhex(row["secret_hex"])
    return ring


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
