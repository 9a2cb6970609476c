"""Generate protocols/vectors/envelope.json: test vectors for the signed envelope.

The key in the vectors is a TEST FIXTURE, published on purpose; never deploy it.
Run ``python -m tools.vectors`` after a deliberate protocol change and commit the file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

FIXTURE_KEY = bytes(range(32))  # TEST FIXTURE ONLY
FIXTURE_KEY_ID = "k1"
TOPIC = "pw/v1/dalian-north/wb-gate1/evt"
OUT = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "envelope.json"


def _sign(topic: str, body: bytes, key: bytes = FIXTURE_KEY) -> str:
    return hmac.new(key, b"pw1\n" + topic.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def _wire(topic: str, body: bytes, key_id: str = FIXTURE_KEY_ID, key: bytes = FIXTURE_KEY) -> str:
    return (body + b"\n" + key_id.encode() + b":" + _sign(topic, body, key).encode()).decode()


def build() -> dict[str, Any]:
    """All vectors as one JSON-able document."""
    weighing = (
        '{"v": 1, "dev": "wb-gate1", "boot": 3, "seq": 42, "ts": 1764072000123, '
        '"kind": "weighing", "body": {"plate": "辽B12345", "gross_kg": 45230, '
        '"tare_kg": 15100, "net_kg": 30130}}'
    ).encode()
    reordered = (
        '{"body": {"net_kg": 30130, "plate": "辽B12345"}, "kind": "weighing", "ts": 1764072000123,'
        ' "seq": 43, "boot": 3, "dev": "wb-gate1", "v": 1}'
    ).encode()
    good = _wire(TOPIC, weighing)
    valid = [
        {"name": "weighing", "topic": TOPIC, "json": weighing.decode(), "wire": good,
         "signature": _sign(TOPIC, weighing), "seq": 42},
        {"name": "fields in another order", "topic": TOPIC, "json": reordered.decode(),
         "wire": _wire(TOPIC, reordered), "signature": _sign(TOPIC, reordered), "seq": 43},
    ]
    other_topic = "pw/v1/dalian-north/wb-gate2/evt"
    bad_shape = (b'{"v": 1, "dev": "wb-gate1", "boot": 3, "seq": true, "ts": 1, "kind": "x", '
                 b'"body": {}}')
    invalid = [
        {"name": "payload edited after signing", "topic": TOPIC,
         "wire": good.replace("45230", "45231"), "reason": "bad_signature"},
        {"name": "signed for another topic", "topic": other_topic, "wire": good,
         "reason": "bad_signature"},
        {"name": "unknown key id", "topic": TOPIC,
         "wire": _wire(TOPIC, weighing, key_id="k9"), "reason": "unknown_key"},
        {"name": "no signature line", "topic": TOPIC, "wire": weighing.decode(),
         "reason": "no_signature"},
        {"name": "signature not hex", "topic": TOPIC, "wire": good[:-64] + "z" * 64,
         "reason": "no_signature"},
        {"name": "signed garbage", "topic": TOPIC, "wire": _wire(TOPIC, b"{not json"),
         "reason": "bad_json"},
        {"name": "boolean seq", "topic": TOPIC, "wire": _wire(TOPIC, bad_shape),
         "reason": "bad_shape"},
    ]
    rfc4231 = [  # RFC 4231 test cases 1, 2 and 6 (key longer than the block size)
        {"key": "0b" * 20, "data": b"Hi There".hex(),
         "hmac": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"key": b"Jefe".hex(), "data": b"what do ya want for nothing?".hex(),
         "hmac": "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"key": "aa" * 131,
         "data": b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
         "hmac": "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    ]
    return {
        "comment": "portwatch envelope v1 test vectors; the key is a published TEST FIXTURE",
        "key_hex": FIXTURE_KEY.hex(),
        "key_id": FIXTURE_KEY_ID,
        "valid": valid,
        "invalid": invalid,
        "hmac_sha256_rfc4231": rfc4231,
    }


def main() -> None:
    doc = build()
    for case in doc["hmac_sha256_rfc4231"]:  # the vectors themselves must be right
        got = hmac.new(bytes.fromhex(case["key"]), bytes.fromhex(case["data"]), hashlib.sha256)
        assert got.hexdigest() == case["hmac"], case
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
