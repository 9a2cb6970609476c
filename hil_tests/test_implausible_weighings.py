"""A hostile device signs weighings no scale could show: through a real Mosquitto to a real
controller, each is stored (it is signed evidence), flagged, alerted and served with its
flags; a message whose JSON gives a key twice is refused, counted, and nothing stored."""

from __future__ import annotations

import json
import time
from typing import Any

from delivery import publish
from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

YEAR_3000 = 32_503_680_000_000
DEVICE = "wb-rogue"


def _send(rig: Rig, cfg: dict[str, Any], messages: list[tuple[str, bytes]]) -> None:
    tls = {"ca": rig.ca} if getattr(rig, "ca", None) else {}  # a site broker on TLS
    publish(rig.broker.port, messages, login=rig.credentials(DEVICE), client_id=DEVICE, **tls)


def _sealed(cfg: dict[str, Any], seq: int, body: dict[str, Any], ts: int | None = None
            ) -> tuple[str, bytes]:
    topic = topics.topic(cfg["site"], DEVICE, "evt")
    now = int(time.time() * 1000)
    fields = envelope.make(DEVICE, 1, seq, now if ts is None else ts, "weighing", body)
    return topic, envelope.seal(bytes.fromhex(cfg["secret_hex"]), cfg["key_id"], topic, fields)


def _body(**change: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return {"plate": "辽B12345", "gross_kg": 45240, "tare_kg": 15000, "net_kg": 30240,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": now - 8000 - change.pop(
                "earlier_ms", 0), "model": "portwatch-sim", **change}


def test_signed_impossible_weighings_are_kept_flagged_alerted_and_served(rig: Rig) -> None:
    # registered as a portwatch-sim weighbridge: 80 t capacity, 20 kg division
    cfg = rig.provision(DEVICE, driver={"type": "weighbridge", "map": "portwatch-sim",
                                        "host": "127.0.0.1", "port": 5020})
    hostile = [
        _body(gross_kg=-40, tare_kg=0, net_kg=-40, earlier_ms=1),
        _body(gross_kg=10**15, net_kg=10**15 - 15000, earlier_ms=2),
        _body(net_kg=99_980, earlier_ms=3),
        _body(gross_kg=45241, net_kg=30241, earlier_ms=4),
        _body(plate="", earlier_ms=5),
        _body(plate="辽B1\x002345", earlier_ms=6),
        _body(plate="辽B12345\r\n", earlier_ms=7),
        _body(plate="辽B\u202e54321", earlier_ms=8),
        _body(plate="<img src=x onerror=alert(1)>", earlier_ms=9),
    ]
    messages = [_sealed(cfg, seq, body) for seq, body in enumerate(hostile, 1)]
    messages.append(_sealed(cfg, 10, _body(earlier_ms=10), ts=YEAR_3000))
    _send(rig, cfg, messages)
    wait_until(lambda: rig.device(DEVICE)["committed_seq"] == 10, 30,
               what="all ten signed weighings stored")

    served = {w["seq"]: w for w in rig.get("/api/v1/weighings", device_id=DEVICE)}
    assert {seq: w["flags"] for seq, w in served.items()} == {
        1: ["negative_weight", "tare_above_gross", "net_not_positive"],
        2: ["over_capacity"],
        3: ["net_mismatch"],
        4: ["off_division"],
        5: ["empty_plate"],
        6: ["plate_unsafe", "plate_format"],
        7: ["plate_unsafe", "plate_format"],
        8: ["plate_unsafe", "plate_format"],
        9: ["plate_unsafe", "plate_format"],
        10: ["device_time_ahead"]}
    assert served[2]["gross_kg"] == 10**15 and served[6]["plate"] == "辽B1\x002345"
    assert len(rig.get("/api/v1/weighings", device_id=DEVICE, flagged="true")) == 10

    alerts = rig.get("/api/v1/alerts", device_id=DEVICE)
    got = sorted((a["code"], a["subject"]) for a in alerts
                 if a["rule"] in ("weighing_plausibility", "device_time"))
    assert got == sorted([("weighing_inconsistent", f"seq {s}") for s in (1, 2, 3, 4)]
                         + [("plate_suspect", f"seq {s}") for s in (5, 6, 7, 8, 9)]
                         + [("device_clock_wrong", "")])
    unsafe = [a for a in alerts if a["code"] == "plate_suspect" and a["severity"] == "critical"]
    assert len(unsafe) == 4

    # one key twice: {"gross_kg": 45240, ..., "gross_kg": 1} can be read two ways
    topic = topics.topic(cfg["site"], DEVICE, "evt")
    body = json.dumps(_body())[:-1] + ', "gross_kg": 1}'
    fields = envelope.make(DEVICE, 1, 11, int(time.time() * 1000), "weighing", {})
    raw = json.dumps(fields).replace('"body": {}', '"body": ' + body).encode()
    sig = envelope.signature(bytes.fromhex(cfg["secret_hex"]), topic, raw)
    _send(rig, cfg, [(topic, raw + b"\n" + cfg["key_id"].encode() + b":" + sig.encode())])
    wait_until(lambda: rig.get("/api/v1/ingest/stats")["rejected_by_reason"].get(
        "duplicate_key", 0) == 1, 20, what="the duplicate key refused and counted")
    [rejection] = rig.get("/api/v1/ingest/rejections", reason="duplicate_key")
    assert rejection["device_id"] == DEVICE
    assert "'gross_kg' appears twice" in rejection["detail"]
    assert 11 not in {w["seq"] for w in rig.get("/api/v1/weighings", device_id=DEVICE)}
    assert rig.device(DEVICE)["committed_seq"] == 10
