"""Test vectors of device-signed custody events and ``device_key`` decisions in the ledger:
``python -m controller.ledger.device_key_vectors`` rewrites
controller/ledger/vectors/device_keys.json (tests check the file matches this code, and that
``device_keys.check_log`` gives the expected verdicts; the firmware's signer must give the
same es256 bytes: RFC 6979 nonces make ECDSA deterministic).

The device keys and the HMAC key are derived from fixed seeds and published here on
purpose: they sign nothing but these vectors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from controller.ledger import device_keys, entries, tree
from protocols import envelope
from protocols.hmac_sha256 import hmac_sha256

PATH = Path(__file__).with_name("vectors") / "device_keys.json"
DEVICE, SITE = "wb-gate1", "dalian-north"
TOPIC = f"pw/v1/{SITE}/{DEVICE}/evt"
STATE_TOPIC = f"pw/v1/{SITE}/{DEVICE}/state"
HMAC_KEY = hashlib.sha256(b"portwatch device key test vector: hmac").digest()
D1 = int.from_bytes(hashlib.sha256(b"portwatch device key test vector: d1").digest(),
                    "big") % device_keys.N
D2 = int.from_bytes(hashlib.sha256(b"portwatch device key test vector: d2").digest(),
                    "big") % device_keys.N


def pub_of(d: int) -> str:
    """The uncompressed SEC1 public key of scalar ``d``, hex."""
    p = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return f"04{p.x:064x}{p.y:064x}"


def sign(d: int, topic: str, json_bytes: bytes) -> str:
    """r || s (low s, RFC 6979 nonce) over the device-signed bytes, hex."""
    der = ec.derive_private_key(d, ec.SECP256R1()).sign(
        envelope.device_signed_bytes(topic, json_bytes),
        ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return f"{r:064x}{min(s, device_keys.N - s):064x}"


def _wire(topic: str, signed: bytes) -> bytes:
    mac = hmac_sha256(HMAC_KEY, envelope.DOMAIN, topic.encode(), b"\n", signed)
    return signed + b"\nk1:" + mac.hex().encode()


def _weighing(seq: int, net: int) -> bytes:
    return (f'{{"v":1,"dev":"{DEVICE}","boot":2,"seq":{seq},"ts":{1_700_000_000_000 + seq},'
            f'"kind":"weighing","body":{{"plate":"辽B12345","gross_kg":{net + 17280},'
            f'"tare_kg":17280,"net_kg":{net},"division_kg":20,"stable_ms":3000,'
            f'"arrived_ts":1699999990000,"model":"portwatch-sim"}}}}').encode()


def _evt(seq: int, signed: bytes) -> entries.DeviceMessage:
    return entries.DeviceMessage(DEVICE, "evt", TOPIC, seq, 1_700_000_000_500 + seq,
                                 _wire(TOPIC, signed))


def samples() -> list[tuple[str, entries.Entry, str]]:
    """(name, entry, what verify makes of it), in log order."""
    pub1, pub2 = pub_of(D1), pub_of(D2)
    birth = (f'{{"v":1,"dev":"{DEVICE}","boot":2,"seq":1,"ts":1700000000000,"kind":"birth",'
             f'"body":{{"fw":"0.3.0","pub":"{pub1}"}}}}').encode()
    w7, w8, w9, w10 = _weighing(7, 40760), _weighing(8, 40780), _weighing(9, 40800), \
        _weighing(10, 40820)
    s9 = sign(D1, TOPIC, w9)
    high_s = f"{s9[:64]}{device_keys.N - int(s9[64:], 16):064x}"
    return [
        ("birth announcing the device's key", entries.DeviceMessage(
            DEVICE, "state", STATE_TOPIC, 1, 1_700_000_000_100, _wire(STATE_TOPIC, birth)),
         "birth: its pub may be registered next"),
        ("device_key from the first birth", entries.Decision(
            device_keys.DECISION, f"device:{DEVICE}", 1_700_000_000_100,
            device_keys.decision_body(DEVICE, pub1, "birth", None)), "key registered"),
        ("weighing signed by the device", _evt(7, w7 + b"\nes256:" + sign(D1, TOPIC, w7)
                                               .encode()), "device-signed"),
        ("weighing with the HMAC only (made with the stolen secret)", _evt(8, w8),
         "fails: not made by the device (no es256 line)"),
        ("weighing with the high-s twin of a valid signature", _evt(9, w9 + b"\nes256:" +
                                                                    high_s.encode()),
         "fails: not in low-s form"),
        ("device_key replaced by an admin", entries.Decision(
            device_keys.DECISION, "cli:ops", 1_700_000_001_000,
            device_keys.decision_body(DEVICE, pub2, "admin", pub1)), "key registered"),
        ("weighing signed by the old key after the replacement", _evt(
            10, w10 + b"\nes256:" + sign(D1, TOPIC, w10).encode()),
         "fails: does not verify under the device's registered key"),
        ("weighing signed by the new key", _evt(
            11, _weighing(11, 40840) + b"\nes256:" + sign(D2, TOPIC, _weighing(11, 40840))
            .encode()), "device-signed"),
    ]


def generate() -> dict[str, Any]:
    rows = []
    for i, (name, e, verdict) in enumerate(samples()):
        b = entries.encode(e)
        row: dict[str, Any] = {"index": i, "name": name, "verdict": verdict,
                               "entry_hex": b.hex(), "leaf_hash_hex": tree.leaf_hash(b).hex()}
        if isinstance(e, entries.DeviceMessage):
            signed = envelope.split_signed(e.wire)[0]
            json_bytes, es256 = envelope.device_line(signed)
            row.update(topic=e.topic, wire=e.wire.decode(),
                       device_signed_bytes_hex=envelope.device_signed_bytes(
                           e.topic, json_bytes).hex(), es256=es256)
        else:
            row.update(decision=e.decision, actor=e.actor, body=e.body)
        rows.append(row)
    found = device_keys.check_log(
        (i, entries.decode(bytes.fromhex(r["entry_hex"]))) for i, r in enumerate(rows))
    return {
        "description": "portwatch device keys: device_key decisions and device-signed custody "
                       "events (es256 line: ECDSA P-256, SHA-256, RFC 6979 nonce, low s, over "
                       "'pw1-dev\\n' + topic + '\\n' + JSON) as ledger entries, in log order, "
                       "with what `portwatch ledger verify` makes of each. Regenerate: "
                       "python -m controller.ledger.device_key_vectors",
        "device_keys": [{"d_hex": f"{D1:064x}", "pub": pub_of(D1)},
                        {"d_hex": f"{D2:064x}", "pub": pub_of(D2)}],
        "hmac_key_hex": HMAC_KEY.hex(), "key_id": "k1",
        "entries": rows,
        "check_log": {"device_signed": found.device_signed, "hmac_only": found.hmac_only,
                      "failed_entries": [i for i, _ in found.failures]},
    }


def render() -> str:
    return json.dumps(generate(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.write_text(render())
    print(f"wrote {PATH}")
