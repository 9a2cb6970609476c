"""The controller seals commands byte for byte as protocols/vectors/commands.json says."""

from __future__ import annotations

import json
from pathlib import Path

from controller import commands
from protocols import bodies, envelope
from tools.command_vectors import OUT, build

VECTORS = json.loads(Path(OUT).read_text())


def test_command_vectors_file_is_current() -> None:
    assert build() == VECTORS


def test_command_vectors_controller_seals_the_same_bytes() -> None:
    c = VECTORS["command"]
    row = {"device_id": c["fields"]["dev"], "kind": c["fields"]["kind"],
           "body_json": json.dumps(c["fields"]["body"])}
    topic, wire = commands.wire("dalian-north", row, VECTORS["key_id"],
                                bytes.fromhex(VECTORS["key_hex"]), c["fields"]["ts"])
    assert topic == c["topic"] and wire == c["wire"].encode()
    assert bodies.check_command("barrier", c["fields"]["body"]) is None


def test_command_vectors_cmdack_verifies_and_wrong_topics_fail() -> None:
    key = bytes.fromhex(VECTORS["key_hex"])
    a = VECTORS["cmdack"]
    fields, _ = envelope.open_message(lambda k: key, a["topic"], a["wire"].encode())
    assert bodies.check("cmdack", "cmdack", fields["body"]) is None
    for topic in VECTORS["wrong_topics"]:
        try:
            envelope.open_message(lambda k: key, topic, VECTORS["command"]["wire"].encode())
        except envelope.EnvelopeError as exc:
            assert exc.reason == "bad_signature"
        else:
            raise AssertionError(f"the command verified on {topic}")
