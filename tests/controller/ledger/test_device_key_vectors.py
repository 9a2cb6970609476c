"""controller/ledger/vectors/device_keys.json: current, and what verify makes of each entry."""

from __future__ import annotations

import json
from typing import Any

from controller.ledger import device_key_vectors, device_keys, entries
from protocols import envelope


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(device_key_vectors.PATH.read_text())
    return doc


def test_vector_file_is_what_the_code_makes() -> None:
    assert device_key_vectors.PATH.read_text() == device_key_vectors.render()


def test_check_log_gives_each_entry_its_stated_verdict() -> None:
    rows = _doc()["entries"]
    found = device_keys.check_log(
        (r["index"], entries.decode(bytes.fromhex(r["entry_hex"]))) for r in rows)
    assert [i for i, _ in found.failures] == [
        r["index"] for r in rows if r["verdict"].startswith("fails")]
    assert found.device_signed == sum(r["verdict"] == "device-signed" for r in rows) == 2
    reasons = dict(found.failures)
    for r in rows:
        if r["verdict"].startswith("fails"):
            assert r["verdict"].split(": ", 1)[1].split(" (")[0] in reasons[r["index"]], r


def test_each_es256_line_is_what_a_p256_signer_gives_and_the_hmac_covers_it() -> None:
    doc = _doc()
    pubs = [k["pub"] for k in doc["device_keys"]]
    secret = bytes.fromhex(doc["hmac_key_hex"])
    for k in doc["device_keys"]:
        assert device_key_vectors.pub_of(int(k["d_hex"], 16)) == k["pub"]
    for r in doc["entries"]:
        if r.get("es256") is None:
            continue
        msg = bytes.fromhex(r["device_signed_bytes_hex"])
        json_bytes = envelope.split(r["wire"].encode())[0]
        assert msg == b"pw1-dev\n" + r["topic"].encode() + b"\n" + json_bytes
        good = [p for p in pubs
                if device_keys.verify(p, r["topic"], json_bytes, r["es256"]) is None]
        assert len(good) == (1 if r["verdict"] != "fails: not in low-s form" else 0), r["name"]
        fields, _, es256 = envelope.open_parts(lambda _k: secret, r["topic"], r["wire"].encode())
        assert es256 == r["es256"] and fields["seq"] >= 7
