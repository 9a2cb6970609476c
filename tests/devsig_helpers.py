"""Device-signed messages for controller tests, made with ``cryptography`` (the verifier's
library) to the contract of PROTOCOL.md ("Device signature"): ECDSA P-256 / SHA-256, RFC
6979 nonce, low s, over ``pw1-dev\\n`` + topic + ``\\n`` + JSON."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controller.ingest.verify import Received
from ctl_helpers import SITE, weighing_body
from protocols import envelope, topics
from protocols.hmac_sha256 import hmac_sha256

N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


class DevKey:
    """A device's P-256 key as the agent keeps it (a test's stand-in for the firmware)."""

    def __init__(self, d: int | None = None) -> None:
        self.key = (ec.derive_private_key(d, ec.SECP256R1()) if d is not None
                    else ec.generate_private_key(ec.SECP256R1()))
        point = self.key.public_key().public_numbers()
        self.pub = "04" + f"{point.x:064x}{point.y:064x}"

    def sign(self, topic: str, json_bytes: bytes) -> str:
        """r || s hex, low s, deterministic nonce."""
        der = self.key.sign(envelope.device_signed_bytes(topic, json_bytes),
                            ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return f"{r:064x}{min(s, N - s):064x}"


def hmac_wire(secret: bytes, key_id: str, topic: str, signed: bytes) -> bytes:
    """``signed`` (JSON, or JSON + es256 line) with the HMAC line over it."""
    mac = hmac_sha256(secret, envelope.DOMAIN, topic.encode(), b"\n", signed)
    return signed + b"\n" + key_id.encode() + b":" + mac.hex().encode()


def evt(device: dict[str, Any], *, seq: int, dkey: DevKey | None, kind: str = "weighing",
        body: dict[str, Any] | None = None, es256: str | None = None,
        received_ms: int = 1764072000500, ts: int = 1764072000000,
        secret: bytes | None = None) -> Received:
    """A custody event; with ``dkey``, signed by it (``es256`` overrides the line)."""
    topic = topics.topic(SITE, device["device_id"], "evt")
    fields = envelope.make(device["device_id"], 1, seq, ts, kind,
                           body if body is not None else weighing_body())
    raw = json.dumps(fields, ensure_ascii=False).encode()
    signed = raw
    if es256 is not None or dkey is not None:
        line = es256 if es256 is not None else dkey.sign(topic, raw)  # type: ignore[union-attr]
        signed = raw + b"\nes256:" + line.encode()
    return Received(topic, hmac_wire(secret or bytes.fromhex(device["secret_hex"]),
                                     device["key_id"], topic, signed), received_ms)


def birth(device: dict[str, Any], *, pub: str | None, boot: int = 1, seq: int = 1,
          received_ms: int = 1764072000100) -> Received:
    """A birth of ``device`` announcing ``pub`` (None: an agent without a device key)."""
    topic = topics.topic(SITE, device["device_id"], "state")
    body: dict[str, Any] = {"fw": "0.2.0", "kind": "weighbridge", "next_seq": 1}
    if pub is not None:
        body["pub"] = pub
    fields = envelope.make(device["device_id"], boot, seq, 1764072000000, "birth", body)
    return Received(topic, envelope.seal(bytes.fromhex(device["secret_hex"]), device["key_id"],
                                         topic, fields), received_ms)


def strip_es256(msg: Received, secret_hex: str, key_id: str) -> Received:
    """The same event re-sealed by someone with only the HMAC secret: es256 line removed."""
    json_bytes = envelope.split(msg.payload)[0]
    return Received(msg.topic, hmac_wire(bytes.fromhex(secret_hex), key_id, msg.topic,
                                         json_bytes), msg.received_ms)
