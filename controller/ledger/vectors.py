"""Test vectors of the ledger formats: ``python -m controller.ledger.vectors`` rewrites
controller/ledger/vectors/ledger.json (tests check the file matches this code).

The two keys are derived from fixed seeds and are published here on purpose: they sign
nothing but these vectors.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.ledger import checkpoint, entries, note, tree

PATH = Path(__file__).with_name("vectors") / "ledger.json"
LOG_SEED = hashlib.sha256(b"portwatch ledger test vector: log key").digest()
WITNESS_SEED = hashlib.sha256(b"portwatch ledger test vector: witness key").digest()
ORIGIN, WITNESS_NAME, COSIGN_TIME = "portwatch/vector-site", "witness.example/w1", 1_700_000_000

_WIRE = ('{"v":1,"dev":"wb-gate1","boot":2,"seq":7,"ts":1700000000123,"kind":"weighing",'
         '"body":{"plate":"辽B12345","gross_kg":58040,"tare_kg":17280,"net_kg":40760,'
         '"division_kg":20,"stable_ms":3000,"arrived_ts":1699999990000,'
         '"model":"portwatch-sim"}}\nk1:' + "5f" * 32).encode()
SAMPLES: list[tuple[str, entries.Entry]] = [
    ("weighing event", entries.DeviceMessage(
        "wb-gate1", "evt", "pw/v1/dalian-north/wb-gate1/evt", 7, 1_700_000_000_456, _WIRE)),
    ("device message whose bytes are not UTF-8", entries.DeviceMessage(
        "gps-7", "tele", "pw/v1/dalian-north/gps-7/tele", 0, 1, b"\xff\x00\n")),
    ("rejection", entries.Decision("rejection", "controller", 1_700_000_001_000, {
        "reason": "bad_signature", "topic": "pw/v1/dalian-north/wb-gate1/evt",
        "device_id": "wb-gate1", "size": 412, "sha256": "00" * 32})),
    ("key rotation", entries.Decision("key_rotation", "cli:ops", 1_700_000_002_000, {
        "device_id": "wb-gate1", "old_key_id": "k1", "new_key_id": "k2",
        "old_valid_until_ms": 1_700_003_602_000})),
    ("status change", entries.Decision("status_change", "controller", 1_700_000_003_000, {
        "device_id": "wb-gate2", "from": "online", "to": "offline", "note": "遗嘱 (will)"})),
]


def _fields(e: entries.Entry) -> dict[str, Any]:
    if isinstance(e, entries.Decision):
        return {"kind": "decision", "decision": e.decision, "actor": e.actor,
                "time_ms": e.time_ms, "body": e.body}
    return {"kind": "device_message", "device_id": e.device_id, "channel": e.channel,
            "topic": e.topic, "seq": e.seq, "received_ms": e.received_ms,
            "wire_b64": base64.b64encode(e.wire).decode()}


def generate() -> dict[str, Any]:
    encoded = [entries.encode(e) for _, e in SAMPLES]
    t = tree.MemoryTree([tree.leaf_hash(b) for b in encoded])
    n = len(encoded)
    log = note.Signer(ORIGIN, note.ED25519, Ed25519PrivateKey.from_private_bytes(LOG_SEED))
    wit = note.Signer(WITNESS_NAME, note.COSIGNATURE_V1,
                      Ed25519PrivateKey.from_private_bytes(WITNESS_SEED))
    signed = checkpoint.sign(log, n, tree.root(t, n))
    cosig = wit.signature_line(note.parse(signed).text, timestamp=COSIGN_TIME)
    return {
        "description": "portwatch ledger v1 vectors: canonical entries (entries.py), RFC 9162 "
                       "tree over them, a C2SP checkpoint and a tlog-cosignature/v1 line. "
                       "Regenerate: python -m controller.ledger.vectors",
        "entries": [{"name": name, "fields": _fields(e), "entry_hex": b.hex(),
                     "leaf_hash_hex": tree.leaf_hash(b).hex()}
                    for (name, e), b in zip(SAMPLES, encoded, strict=True)],
        "tree": {
            "roots_hex": [tree.root(t, k).hex() for k in range(n + 1)],
            "inclusion": [{"index": i, "size": n,
                           "path_hex": [h.hex() for h in tree.inclusion_proof(t, i, n)]}
                          for i in range(n)],
            "consistency": [{"old": m, "new": n,
                             "proof_hex": [h.hex() for h in tree.consistency_proof(t, m, n)]}
                            for m in range(1, n)],
        },
        "checkpoint": {
            "log_seed_hex": LOG_SEED.hex(), "log_vkey": log.verifier.vkey, "note": signed,
            "witness_seed_hex": WITNESS_SEED.hex(), "witness_vkey": wit.verifier.vkey,
            "cosignature_time": COSIGN_TIME, "cosigned_note": signed + cosig,
        },
    }


def render() -> str:
    return json.dumps(generate(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(render())
    print(f"wrote {PATH}")
