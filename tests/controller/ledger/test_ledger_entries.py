"""Canonical entries: the published vectors, determinism, and refusal of anything else."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from controller.ledger import entries, vectors
from controller.ledger.errors import EntryFormatError

VECTORS = json.loads(vectors.PATH.read_text())
ROOT = Path(__file__).resolve().parents[3]


def test_entries_vector_file_is_what_the_code_produces() -> None:
    assert vectors.PATH.read_text() == vectors.render(), \
        "run: python -m controller.ledger.vectors"


@pytest.mark.parametrize("vector", VECTORS["entries"], ids=lambda v: v["name"])
def test_entries_vectors_decode_to_their_fields_and_hash_as_published(
        vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["entry_hex"])
    assert hashlib.sha256(b"\x00" + raw).hexdigest() == vector["leaf_hash_hex"]
    e = entries.decode(raw)
    f = vector["fields"]
    if f["kind"] == "decision":
        assert isinstance(e, entries.Decision)
        assert (e.decision, e.actor, e.time_ms, e.body) == (f["decision"], f["actor"],
                                                           f["time_ms"], f["body"])
    else:
        assert isinstance(e, entries.DeviceMessage)
        assert (e.device_id, e.channel, e.topic, e.seq, e.received_ms) == (
            f["device_id"], f["channel"], f["topic"], f["seq"], f["received_ms"])
        assert e.wire == base64.b64decode(f["wire_b64"])
    assert entries.encode(e) == raw


def test_entries_device_message_layout_is_length_prefixed_big_endian() -> None:
    raw = entries.device_message(device_id="d", channel="evt", topic="t/d/evt", seq=258,
                                 received_ms=1, wire=b"xyz")
    assert raw == (b"PWL\x01" + b"\x01" + b"\x01d" + b"\x03evt" + b"\x00\x07t/d/evt"
                   + (258).to_bytes(8, "big") + (1).to_bytes(8, "big")
                   + b"\x00\x00\x00\x03xyz")


def test_entries_decision_is_deterministic_whatever_the_key_order() -> None:
    a = entries.decision(kind="alert", actor="rules", time_ms=5, body={"b": 1, "a": [1, "é"]})
    b = entries.decision(kind="alert", actor="rules", time_ms=5, body={"a": [1, "é"], "b": 1})
    assert a == b
    assert b'{"a":[1,"\xc3\xa9"],"b":1}' in a  # sorted, compact, UTF-8


def _bad_body(raw: bytes) -> bytes:
    return raw.replace(b'{"a":1,"b":2}', b'{"b":2,"a":1}')


@pytest.mark.parametrize(("mutate", "why"), [
    (lambda r: r + b"\x00", "after the end"),
    (lambda r: r[:-1], "ends inside"),
    (lambda r: b"PWL\x02" + r[4:], "must start with"),
    (lambda r: r[:4] + b"\x09" + r[5:], "unknown entry kind"),
    (_bad_body, "canonical form"),
])
def test_entries_decode_refuses_non_canonical_bytes(mutate: Any, why: str) -> None:
    raw = entries.decision(kind="alert", actor="x", time_ms=1, body={"a": 1, "b": 2})
    with pytest.raises(EntryFormatError, match=why):
        entries.decode(mutate(raw))


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"kind": "Alert!"}, "decision kind"),
    ({"actor": ""}, "must not be empty"),
    ({"time_ms": -1}, "0..2"),
    ({"body": {"x": float("nan")}}, "plain JSON"),
    ({"body": {"x": object()}}, "plain JSON"),
])
def test_entries_refuse_fields_without_a_canonical_form(kwargs: dict[str, Any],
                                                        why: str) -> None:
    base: dict[str, Any] = {"kind": "alert", "actor": "rules", "time_ms": 1, "body": {}}
    with pytest.raises(EntryFormatError, match=why):
        entries.decision(**{**base, **kwargs})


def test_entries_to_json_shows_wire_text_or_base64() -> None:
    text = entries.decode(entries.device_message(device_id="d", channel="evt", topic="t",
                                                 seq=1, received_ms=2, wire=b"{}\nk1:ab"))
    binary = entries.decode(entries.device_message(device_id="d", channel="evt", topic="t",
                                                   seq=1, received_ms=2, wire=b"\xff"))
    assert entries.to_json(text)["wire"] == "{}\nk1:ab"
    assert entries.to_json(binary)["wire_b64"] == "/w=="


def test_entries_format_is_documented_with_its_vectors() -> None:
    doc = (ROOT / "controller" / "ledger" / "FORMAT.md").read_text()
    assert "vectors/ledger.json" in doc and '"PWL" 0x01' in doc
