"""The ledger's device-key vectors (controller/ledger/vectors/device_keys.json) against the
firmware's own signer: the same keys give the same public keys and, RFC 6979 nonces being
deterministic, byte for byte the same es256 lines the controller's vectors hold; run under
pytest and MicroPython."""

import json

from protocols import envelope, p256
from shared_support import read_file, repo_root


def _doc():
    return json.loads(read_file(repo_root() + "/controller/ledger/vectors/device_keys.json")
                      .decode())


def _unhex(text):
    return bytes(int(text[i : i + 2], 16) for i in range(0, len(text), 2))


def test_public_keys_match_the_ledger_vectors():
    for key in _doc()["device_keys"]:
        assert p256.public(int(key["d_hex"], 16)) == key["pub"]


def test_firmware_signs_each_device_signed_event_as_the_vectors_say():
    doc = _doc()
    keys = [int(k["d_hex"], 16) for k in doc["device_keys"]]
    checked = 0
    for row in doc["entries"]:
        es256 = row.get("es256")
        # the high-s twin is the one es256 line no signer makes
        if es256 is None or row["verdict"] == "fails: not in low-s form":
            continue
        msg = _unhex(row["device_signed_bytes_hex"])
        json_bytes = envelope.split(row["wire"].encode())[0]
        assert msg == envelope.device_signed_bytes(row["topic"], json_bytes)
        made = [envelope._hex(p256.sign(d, msg)) for d in keys]
        assert es256 in made, row["name"]
        checked += 1
    assert checked == 3  # two device-signed, one signed by the replaced key
