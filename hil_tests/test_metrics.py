"""`portwatch controller` serves /metrics: what arrives over a real broker shows there.

Real Mosquitto (TLS, logins), the rig's controller process started as an operator starts
it, a device's signed messages published with its broker login, and a Prometheus scrape
of the controller's port parsed by prometheus_client's parser.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig


def _scrape(rig: Rig, token: str | None) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.get(rig.api_url + "/metrics", headers=headers, timeout=10)
    r.raise_for_status()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(r.text) for s in f.samples}


def _publish(rig: Rig, device: dict[str, Any], wires: list[tuple[str, bytes]]) -> None:
    client = rig.mqtt_client(device["device_id"], rig.credentials(device["device_id"]))
    client.connect("127.0.0.1", rig.broker.port)
    client.loop_start()
    try:
        for topic, wire in wires:
            client.publish(topic, wire, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_controller_metrics_count_what_its_broker_delivered(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    device = rig.provision("wb-metrics")
    secret = bytes.fromhex(device["secret_hex"])
    topic = topics.topic(rig.site, device["device_id"], "evt")
    now = int(time.time() * 1000)
    body = {"plate": "辽B12345", "gross_kg": 45240, "tare_kg": 15000, "net_kg": 30240,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": now, "model": "sim"}
    good = envelope.seal(secret, device["key_id"], topic,
                         envelope.make(device["device_id"], 1, 1, now, "weighing", body))
    forged = envelope.seal(b"\x5a" * 32, device["key_id"], topic,
                           envelope.make(device["device_id"], 1, 2, now, "weighing", body))
    _publish(rig, device, [(topic, good), (topic, forged)])

    def seen() -> bool:
        s = _scrape(rig, rig.admin_token)
        return s.get(("portwatch_ingest_rejected_messages_total",
                      (("reason", "bad_signature"),))) == 1 and \
            s.get(("portwatch_ingest_stored_messages_total", (("kind", "weighing"),))) == 1

    wait_until(seen, 20, what="the weighing and the forged message on /metrics")
    s = _scrape(rig, rig.admin_token)
    assert s[("portwatch_ingest_broker_connected", ())] == 1
    assert s[("portwatch_ingest_commit_duration_seconds_count", ())] >= 1
    assert s[("portwatch_devices", (("state", "online"),))] == 1
    # without a token (the controller was started without --metrics-public): refused
    assert httpx.get(rig.api_url + "/metrics", timeout=10).status_code == 401

    # started again with PORTWATCH_METRICS_PUBLIC=1 (`--metrics-public`): no token needed,
    # the store's figures are there at once, /api/ still needs a token
    rig.stop_controller()
    monkeypatch.setenv("PORTWATCH_METRICS_PUBLIC", "1")
    rig.start_controller()
    s = _scrape(rig, None)
    assert s[("portwatch_devices", (("state", "online"),))] == 1
    assert s[("portwatch_ledger_entries", ())] >= 2
    assert httpx.get(rig.api_url + "/api/v1/devices", timeout=10).status_code == 401
