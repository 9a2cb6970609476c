"""Key rotation: new key ids, a grace judged by the controller's receipt time, the record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller import registry
from controller.errors import UnknownDevice
from controller.ingest.verify import Accepted, Received, Rejected, check_message
from controller.keyring import DeviceKey
from controller.storage import Store, open_store
from controller.storage.schema import SCHEMA_VERSION
from ctl_helpers import SITE, signed

T0 = 1_764_072_000_000  # the controller's clock at the rotation, ms


def _check(db: Store, msg: Received) -> Accepted | Rejected:
    return check_message(msg, site=SITE, keys=registry.secrets_by_device(db))


def _old_key_msg(device: dict[str, Any], received_ms: int, seq: int = 1) -> Received:
    return signed(device, seq=seq, key_id="k1", secret=bytes.fromhex(device["secret_hex"]),
                  received_ms=received_ms)


def test_rotate_key_old_key_accepted_until_grace_then_expired(
        db: Store, device: dict[str, Any]) -> None:
    rotation = registry.rotate_key(db, "wb-1", grace_s=60, now=T0)
    assert (rotation["old_key_id"], rotation["key_id"]) == ("k1", "k2")
    assert rotation["old_valid_until_ms"] == T0 + 60_000
    before = _check(db, _old_key_msg(device, T0 + 59_999))
    assert isinstance(before, Accepted) and before.key_id == "k1"
    after = _check(db, _old_key_msg(device, T0 + 60_000))
    assert isinstance(after, Rejected) and after.reason == "expired_key", after
    assert "k1" in after.detail


def test_rotate_key_judges_by_receipt_time_not_device_clock(
        db: Store, device: dict[str, Any]) -> None:
    registry.rotate_key(db, "wb-1", grace_s=1, now=T0)
    # the device claims a time inside the grace; the controller received it after
    msg = signed(device, seq=1, key_id="k1", ts=T0, received_ms=T0 + 5_000)
    v = _check(db, msg)
    assert isinstance(v, Rejected) and v.reason == "expired_key"


def test_rotate_key_new_key_accepted_and_becomes_current(
        db: Store, device: dict[str, Any]) -> None:
    rotation = registry.rotate_key(db, "wb-1", grace_s=0, now=T0)
    current = registry.get(db, "wb-1")
    assert (current["key_id"], current["secret_hex"]) == ("k2", rotation["secret_hex"])
    assert rotation["secret_hex"] != device["secret_hex"]
    v = _check(db, signed(current, seq=1, received_ms=T0 + 10**9))
    assert isinstance(v, Accepted) and v.key_id == "k2"


def test_rotate_key_unknown_key_id_and_wrong_secret_are_rejected(
        db: Store, device: dict[str, Any]) -> None:
    registry.rotate_key(db, "wb-1", grace_s=60, now=T0)
    unknown = _check(db, signed(device, seq=1, key_id="k3", received_ms=T0))
    assert isinstance(unknown, Rejected) and unknown.reason == "unknown_key"
    # the new key id with the old secret: a forgery, whatever the key's age
    forged = _check(db, signed(device, seq=1, key_id="k2", received_ms=T0))
    assert isinstance(forged, Rejected) and forged.reason == "bad_signature"
    # an expired key with a wrong signature is a forgery too, not an expired key
    bad = _check(db, signed(device, seq=1, key_id="k1", secret=b"\x01" * 32,
                            received_ms=T0 + 10**9))
    assert isinstance(bad, Rejected) and bad.reason == "bad_signature"


def test_rotate_key_twice_numbers_keys_and_never_extends_an_old_key(
        db: Store, device: dict[str, Any]) -> None:
    registry.rotate_key(db, "wb-1", grace_s=60, now=T0)
    second = registry.rotate_key(db, "wb-1", grace_s=3600, now=T0 + 1000)
    assert (second["old_key_id"], second["key_id"]) == ("k2", "k3")
    ring = registry.secrets_by_device(db)["wb-1"]
    assert ring["k1"].valid_until_ms == T0 + 60_000  # not pushed out by the second rotation
    assert ring["k2"].valid_until_ms == T0 + 1000 + 3_600_000
    assert ring["k3"].valid_until_ms is None
    assert registry.newest_key(ring)[0] == "k3"


def test_rotate_key_is_recorded_with_its_actor(db: Store,
                                               device: dict[str, Any]) -> None:
    registry.rotate_key(db, "wb-1", grace_s=60, actor="token:ops (admin)", now=T0)
    rows = list(db.db["key_rotations"].rows)
    assert [(r["device_id"], r["old_key_id"], r["new_key_id"], r["rotated_ms"],
             r["old_valid_until_ms"], r["actor"]) for r in rows] == [
        ("wb-1", "k1", "k2", T0, T0 + 60_000, "token:ops (admin)")]


def test_rotate_key_refuses_unknown_device_and_negative_grace(
        db: Store, device: dict[str, Any]) -> None:
    with pytest.raises(UnknownDevice):
        registry.rotate_key(db, "wb-404", grace_s=60)
    with pytest.raises(ValueError, match="grace_s"):
        registry.rotate_key(db, "wb-1", grace_s=-1)
    assert db.db["key_rotations"].count == 0 and db.db["device_keys"].count == 1


def test_newest_key_orders_key_ids_by_number() -> None:
    ring = {f"k{n}": DeviceKey(bytes([n]), 5) for n in (1, 9, 10, 2)}
    assert registry.newest_key(ring)[0] == "k10"
    ring["k3"] = DeviceKey(b"\x03")  # the current key (never retired) wins
    assert registry.newest_key(ring)[0] == "k3"


def test_keys_stamp_changes_on_provision_and_rotation(db: Store,
                                                      device: dict[str, Any]) -> None:
    first = registry.keys_stamp(db)
    registry.rotate_key(db, "wb-1", grace_s=60, now=T0)
    second = registry.keys_stamp(db)
    registry.provision(db, device_id="wb-2", site=SITE, kind="weighbridge")
    assert len({first, second, registry.keys_stamp(db)}) == 3


def test_with_key_replaces_only_the_key_in_a_config(db: Store,
                                                    device: dict[str, Any]) -> None:
    cfg = registry.device_config(device, mqtt_password="pw", broker_host="h", broker_port=1,
                                 data_dir="d")
    rotation = registry.rotate_key(db, "wb-1", grace_s=60)
    new = registry.with_key(cfg, rotation)
    assert (new["key_id"], new["secret_hex"]) == (rotation["key_id"], rotation["secret_hex"])
    assert {k: v for k, v in new.items() if k not in ("key_id", "secret_hex")} == {
        k: v for k, v in cfg.items() if k not in ("key_id", "secret_hex")}
    with pytest.raises(ValueError, match="wb-1"):
        registry.with_key({**cfg, "device_id": "wb-2"}, rotation)


def test_migrate_from_schema_1_puts_current_keys_in_the_ring(db_path: Path,
                                                              db: Store,
                                                              device: dict[str, Any]) -> None:
    db.conn.execute("DROP TABLE device_keys")  # as a store written before rotation existed
    db.conn.execute("PRAGMA user_version=1")
    db.close()
    again = open_store(db_path, create=True)
    ring = registry.secrets_by_device(again)
    assert ring == {"wb-1": {"k1": DeviceKey(bytes.fromhex(device["secret_hex"]))}}
    assert isinstance(_check(again, signed(device, seq=1)), Accepted)
    assert again.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
