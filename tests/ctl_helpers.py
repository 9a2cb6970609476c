"""Build signed messages the way an agent does, for controller tests."""

from __future__ import annotations

from typing import Any

from controller.ingest.verify import Received
from protocols import envelope, topics

SITE = "test-site"


def weighing_body(gross: int = 45240, plate: str = "辽B12345") -> dict[str, Any]:
    return {"plate": plate, "gross_kg": gross, "tare_kg": 15000, "net_kg": gross - 15000,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": 1764072000000, "model": "sim"}


def signed(device: dict[str, Any], *, seq: int, channel: str = "evt", kind: str = "weighing",
           body: dict[str, Any] | None = None, boot: int = 1, ts: int = 1764072000000,
           secret: bytes | None = None, key_id: str | None = None,
           received_ms: int = 1764072000500) -> Received:
    topic = topics.topic(SITE, device["device_id"], channel)
    fields = envelope.make(device["device_id"], boot, seq, ts, kind,
                           body if body is not None else weighing_body())
    wire = envelope.seal(secret or bytes.fromhex(device["secret_hex"]),
                         key_id or device["key_id"], topic, fields)
    return Received(topic, wire, received_ms)
