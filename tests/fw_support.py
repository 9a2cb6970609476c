"""Firmware-bundle test helpers: the TEST-ONLY firmware key and device configs per kind.

TEST FIXTURE KEY: derived from a public string, so anyone can sign with it. It exists so
that bundles built in tests are reproducible; it must never be a site's key (a site's key
is made by `portwatch firmware keygen` and kept beside the store, mode 0600).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from protocols import p256

TEST_ONLY_FW_D = int.from_bytes(hashlib.sha256(
    b"portwatch TEST-ONLY firmware key: never on a device").digest(), "big") % p256.N
TEST_ONLY_FW_PUB = p256.public(TEST_ONLY_FW_D)
TEST_ONLY_KEY_ID = "fw-test-only"

DRIVERS: dict[str, dict[str, Any]] = {
    "weighbridge": {"type": "weighbridge", "map": "portwatch-sim", "host": "127.0.0.1",
                    "port": 1, "stable_s": 3.0, "poll_ms": 200},
    "tracker": {"type": "tracker", "source": "tcp:127.0.0.1:1"},
    "lab": {"type": "lab", "source": "tcp:127.0.0.1:1"},
    "rail": {"type": "rail", "source": "tcp:127.0.0.1:1"},
}
REGISTRY_KIND = {"weighbridge": "weighbridge", "tracker": "gps", "lab": "lab",
                 "rail": "rail_reader"}


def device_config(driver: str, **extra: Any) -> dict[str, Any]:
    """A device config for a ``driver`` agent whose broker is not there (127.0.0.1:1): the
    agent boots, logs its boot line and retries the broker."""
    return {"device_id": f"t-{driver}", "site": "test", "kind": REGISTRY_KIND[driver],
            "key_id": "k1", "secret_hex": "11" * 32, "data_dir": "data",
            "mqtt": {"host": "127.0.0.1", "port": 1}, "driver": DRIVERS[driver],
            "health_interval_s": 10, **extra}


def write_config(path: Path, driver: str, **extra: Any) -> Path:
    path.write_text(json.dumps(device_config(driver, **extra)))
    return path
