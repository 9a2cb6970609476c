"""Device HMAC keys as the ingest uses them: pure values, no storage.

Each device has a ring of keys ``k1``, ``k2``, …; a rotation sets ``valid_until_ms`` on the
keys it retires (controller clock), and the newest key is the one without an end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """One HMAC key of a device; a rotation sets ``valid_until_ms`` on the keys it retires."""

    secret: bytes
    valid_until_ms: int | None = None

    def valid_at(self, ms: int) -> bool:
        return self.valid_until_ms is None or ms < self.valid_until_ms


KeyRing = Mapping[str, Mapping[str, DeviceKey]]  # device id -> key id -> key


def key_number(key_id: str) -> int:
    """The n of key id ``k<n>`` (0 for any other form), so that k10 comes after k9."""
    digits = key_id[1:]
    return int(digits) if key_id[:1] == "k" and digits.isdigit() else 0


def newest_key(keys: Mapping[str, DeviceKey]) -> tuple[str, DeviceKey]:
    """The key a device was given last (the one the controller signs its acks with)."""
    key_id = max(keys, key=lambda k: (keys[k].valid_until_ms is None, key_number(k)))
    return key_id, keys[key_id]
