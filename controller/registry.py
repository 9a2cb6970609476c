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
from typing import Any

from controller import broker_names
from controller.errors import DeviceDecommissioned, DeviceExists, InvalidInput, UnknownDevice
from controller.keyring import DeviceKey, key_number, newest_key
from controller.storage import Store, ledger_log, now_ms
from controller.storage import devices as rows
from protocols import topics

DEVICE_KINDS = ("weighbridge", "gps", "rail_reader", "lab")
__all__ = ["DEVICE_KINDS", "decommission", "device_config", "get", "keys_stamp",
           "mosquitto_hash", "newest_key", "provision", "rotate_key", "secrets_by_device",
           "set_device_key", "with_key"]


def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = 101) -> str:
    """Hash a password the way ``mosquitto_passwd`` does (PBKDF2-SHA512, ``$7$``)."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _check_ids(device_id: str, site: str, kind: str) -> None:
    broker_names.check_device_id(device_id)
    try:
        topics.check_id(site, "site")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    if kind not in DEVICE_KINDS:
        raise InvalidInput(f"unknown device kind {kind!r}: use one of {', '.join(DEVICE_KINDS)}")


def provision(
    store: Store,
    *,
    device_id: str,
    site: str,
    kind: str,
    driver: dict[str, Any] | None = None,
    description: str = "",
    actor: str = "cli",
) -> dict[str, Any]:
    """Register a device; return its row plus the one-time ``mqtt_password``.

    The driver settings are checked first (an unknown register map is refused here, not
    at the agent's boot); the registry row, the first key and the ledger's provisioning
    decision are written in one transaction.
    """
    _check_ids(device_id, site, kind)
    from controller import drivers  # the driver rules know the firmware's maps

    try:
        driver = drivers.validate_driver(kind, driver or {})
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    created = now_ms()
    row: dict[str, Any] = {
        "device_id": device_id,
        "site": site,
        "kind": kind,
        "description": description,
        "key_id": "k1",
        "secret_hex": secrets.token_bytes(32).hex(),
        "mqtt_password_hash": "",
        "created_ms": created,
        "driver_json": json.dumps(driver, ensure_ascii=False),
    }
    password = secrets.token_urlsafe(24)
    row["mqtt_password_hash"] = mosquitto_hash(password)
    with store.transaction() as conn:  # the registry and the ledger change together
        if rows.exists(store, device_id):
            raise DeviceExists(f"device {device_id!r} is already registered (a decommissioned "
                               "device keeps its id with its history): pick another id")
        rows.insert(conn, row)
        ledger_log.append_decision(conn, "provisioning", actor, {
            "device_id": device_id, "site": site, "kind": kind, "key_id": row["key_id"],
            "driver": driver}, created)
    return {**get(store, device_id), "mqtt_password": password}


def get(store: Store, device_id: str) -> dict[str, Any]:
    """One device's row, or UnknownDevice."""
    row = rows.get(store, device_id)
    if row is None:
        raise UnknownDevice(f"no device {device_id!r}: list devices with `portwatch device list`")
    return row


def secrets_by_device(store: Store) -> dict[str, dict[str, DeviceKey]]:
    """{device_id: {key_id: key}} for every active device (the ingest's key ring)."""
    return rows.key_ring(store)


def keys_stamp(store: Store) -> tuple[int, int, int, int]:
    """Changes whenever a key is added, removed or retired: when to reload the key ring."""
    return rows.keys_stamp(store)


def rotate_key(store: Store, device_id: str, *, grace_s: float,
               actor: str = "cli", now: int | None = None) -> dict[str, Any]:
    """Give a device a new HMAC key; its older keys stay valid for ``grace_s`` more seconds.

    Returns ``device_id``, the new ``key_id`` and ``secret_hex`` (shown once: put them in
    the device's config), ``old_key_id``, ``old_valid_until_ms`` and ``rotated_ms``.
    Every rotation is recorded in ``key_rotations`` and in the ledger with its ``actor``.
    """
    if grace_s < 0:
        raise InvalidInput(f"grace_s must be >= 0, not {grace_s}")
    now = now if now is not None else now_ms()
    until = now + round(grace_s * 1000)
    with store.transaction() as conn:
        device = _active(store, device_id)
        new_id = f"k{max(map(key_number, rows.key_ids(conn, device_id)), default=0) + 1}"
        secret_hex = secrets.token_bytes(32).hex()
        # a key retired earlier keeps its earlier end: a rotation never extends a key's life
        rows.retire_keys(conn, device_id, until)
        rows.insert_key(conn, device_id, new_id, secret_hex, now)
        rows.set_current_key(conn, device_id, new_id, secret_hex)
        rows.record_rotation(conn, device_id, device["key_id"], new_id, now, until, actor)
        ledger_log.append_decision(conn, "key_rotation", actor, {
            "device_id": device_id, "old_key_id": device["key_id"], "new_key_id": new_id,
            "old_valid_until_ms": until}, now)
    return {"device_id": device_id, "key_id": new_id, "secret_hex": secret_hex,
            "old_key_id": device["key_id"], "old_valid_until_ms": until, "rotated_ms": now}


def set_device_key(store: Store, device_id: str, pub: str, *, actor: str,
                   now: int | None = None) -> dict[str, Any]:
    """Register or replace a device's public key (ECDSA P-256, 130 hex digits) by an admin.

    A ``device_key`` ledger decision records who did it and which key it replaces; from
    then on the device's custody events must be signed by the new key, at ingest and in
    ``portwatch ledger verify``. Active ``device_key_mismatch`` alerts of the device are
    cleared. Returns ``device_id``, ``pub``, ``replaces`` (the old key or None) and
    ``leaf_index`` (the decision's ledger entry).
    """
    from controller.ledger import device_keys
    from controller.supervision import device_keys as key_alerts

    try:
        device_keys.check_pub(pub)
    except device_keys.DeviceKeyError as exc:
        raise InvalidInput(f"pub: {exc}") from exc
    now = now if now is not None else now_ms()
    with store.transaction() as conn:
        device = _active(store, device_id)
        old = device.get("device_pub")
        rows.set_device_pub(conn, device_id, pub)
        idx = ledger_log.append_decision(conn, device_keys.DECISION, actor,
                                         device_keys.decision_body(device_id, pub, "admin", old),
                                         now)
        key_alerts.clear_mismatches(conn, device_id=device_id, actor=actor, now_ms=now)
    return {"device_id": device_id, "pub": pub, "replaces": old, "leaf_index": idx}


def decommission(store: Store, device_id: str, *, reason: str, actor: str,
                 now: int | None = None) -> dict[str, Any]:
    """Take a device out of service for good; its history stays.

    Every key ends now (its messages are rejected from here on), the next broker
    configuration leaves its login out, and the ledger records who did it and why.
    """
    now = now if now is not None else now_ms()
    with store.transaction() as conn:
        _active(store, device_id)
        rows.retire_keys(conn, device_id, now)
        rows.mark_decommissioned(conn, device_id, now, actor)
        ledger_log.append_decision(conn, "decommissioning", actor,
                                   {"device_id": device_id, "reason": reason}, now)
    return get(store, device_id)


def _active(store: Store, device_id: str) -> dict[str, Any]:
    device = get(store, device_id)
    if device.get("decommissioned_ms") is not None:
        raise DeviceDecommissioned(f"device {device_id!r} was decommissioned: its history "
                                   "is kept, but it takes no new keys; register a new id")
    return device


def with_key(config: dict[str, Any], rotation: dict[str, Any]) -> dict[str, Any]:
    """A device's config file with the new key of ``rotation`` (broker login unchanged)."""
    if config.get("device_id") != rotation["device_id"]:
        raise InvalidInput(f"that config is for {config.get('device_id')!r}, "
                         f"not {rotation['device_id']!r}")
    return {**config, "key_id": rotation["key_id"], "secret_hex": rotation["secret_hex"]}


def device_config(
    device: dict[str, Any],
    *,
    mqtt_password: str,
    broker_host: str,
    broker_port: int,
    data_dir: str,
    tls_ca: bytes | None = None,
) -> dict[str, Any]:
    """The config file the agent boots with (secret included: write it mode 0600).

    ``tls_ca`` (the site CA, DER): MQTT over TLS, the broker's certificate pinned to it.
    """
    mqtt: dict[str, Any] = {
        "host": broker_host,
        "port": broker_port,
        "user": device["device_id"],
        "password": mqtt_password,
        "keepalive": 30,
    }
    if tls_ca is not None:
        mqtt.update(tls=True, tls_ca_hex=tls_ca.hex())
    return {
        "device_id": device["device_id"],
        "site": device["site"],
        "kind": device["kind"],
        "key_id": device["key_id"],
        "secret_hex": device["secret_hex"],
        "mqtt": mqtt,
        "driver": json.loads(device["driver_json"] or "{}"),
        "health_interval_s": 10,
        "data_dir": data_dir,
    }
