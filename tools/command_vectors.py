"""Generate protocols/vectors/commands.json: a signed ``barrier`` command and its ``cmdack``.

Same TEST FIXTURE key as envelope.json (published on purpose; never deploy it). Both ends
check these bytes: the controller seals the command to exactly this wire form
(tests/controller/test_command_vectors.py) and the firmware opens it, refuses it on any
other topic, and its acknowledgement verifies (tests/edge/test_commands.py, also under
micropython). Run ``python -m tools.command_vectors`` after a deliberate protocol change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from protocols import envelope
from tools.vectors import FIXTURE_KEY, FIXTURE_KEY_ID

OUT = Path(__file__).resolve().parent.parent / "protocols" / "vectors" / "commands.json"
SITE, DEVICE = "dalian-north", "wb-out"


def build() -> dict[str, Any]:
    """The vectors as one JSON-able document."""
    cmd_topic = f"pw/v1/{SITE}/{DEVICE}/cmd"
    ack_topic = f"pw/v1/{SITE}/{DEVICE}/cmdack"
    body = {"id": "c-00112233aabbccdd", "action": "open", "weighing_seq": 42,
            "expires_ts": 1764072060000, "reason": "cleared", "display": "GO o-7"}
    cmd = envelope.make(DEVICE, 0, 0, 1764072000000, "barrier", body)
    ack = envelope.make(DEVICE, 3, 1, 1764072000400, "cmdack",
                        {"id": body["id"], "result": "done", "detail": ""})
    return {
        "comment": "portwatch command vectors; the key is the published TEST FIXTURE of "
                   "envelope.json",
        "key_hex": FIXTURE_KEY.hex(), "key_id": FIXTURE_KEY_ID,
        "command": {"topic": cmd_topic, "fields": cmd, "wire": envelope.seal(
            FIXTURE_KEY, FIXTURE_KEY_ID, cmd_topic, cmd).decode()},
        "cmdack": {"topic": ack_topic, "fields": ack, "wire": envelope.seal(
            FIXTURE_KEY, FIXTURE_KEY_ID, ack_topic, ack).decode()},
        # the command's bytes on other topics: each must fail the HMAC
        "wrong_topics": [f"pw/v1/{SITE}/{DEVICE}/ack", f"pw/v1/{SITE}/wb-in/cmd"],
    }


def main() -> None:
    OUT.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
