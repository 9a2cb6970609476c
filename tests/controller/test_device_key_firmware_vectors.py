"""The controller's verifier against the firmware's signing vectors
(protocols/vectors/devsig.json): every signature the device side publishes verifies under
its key with ``controller.ledger.device_keys`` (and not under another key, nor once its
message is changed), and the vectors' wire message opens with its es256 line split off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controller.ledger import device_keys
from protocols import envelope

VECTORS = Path(__file__).resolve().parents[2] / "protocols" / "vectors" / "devsig.json"


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(VECTORS.read_text())
    return doc


def test_every_firmware_signature_verifies_on_the_controller() -> None:
    doc = _doc()
    pubs = [k["pub"] for k in doc["keys"]]  # a case names its key by index
    assert len(doc["signatures"]) >= 3
    for case in doc["signatures"]:
        pub = pubs[case["key"]]
        json_bytes = case["json"].encode()
        msg = envelope.device_signed_bytes(case["topic"], json_bytes)
        assert msg.hex() == case["message_hex"]
        assert device_keys.verify(pub, case["topic"], json_bytes, case["sig"]) is None
        other = next(p for p in pubs if p != pub)
        assert device_keys.verify(other, case["topic"], json_bytes, case["sig"]) is not None
        assert device_keys.verify(pub, case["topic"], json_bytes + b" ", case["sig"]) \
            is not None


def test_firmware_wire_vector_opens_and_its_device_signature_checks() -> None:
    w = _doc()["wire"]
    secret = bytes.fromhex(w["hmac_key_hex"])
    fields, key_id, es256 = envelope.open_parts(
        lambda k: secret if k == w["key_id"] else None, w["topic"], w["wire"].encode())
    assert (key_id, "es256:" + str(es256)) == (w["key_id"], w["es256"])
    assert fields["kind"] == "weighing"
    assert device_keys.check_wire(w["pub"], w["topic"], w["wire"].encode()) is None
