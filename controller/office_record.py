"""A trip record for a destination customs office: its topics, its text, its signature.

The record is a C2SP signed note (controller/ledger/note.py) signed with the ledger's log key
(Ed25519, the key ``portwatch ledger key`` prints)::

    portwatch trip record v1
    {"checkpoint":...,"departure":...,"office":"cn-dl-inland","office_seq":7,...}

    — portwatch/<site> <base64(key id ‖ signature)>

Why the log key and not an HMAC with a per-office key: the office must be able to show a
third party (its court, the port's auditor) that the controller said this, and an HMAC key
the office also holds would let it forge what it shows; the office already pins the log key
to check the ledger's checkpoints it witnesses, so no new key is handed out; and signing is
one Ed25519 operation per record. The JSON is one line, sorted keys, no spaces, so the note
text has no blank line and the same record gives the same bytes.

Topics, beside the devices' subtrees (protocols/topics.py)::

    pw/v1/<site>/<office_id>/trip      controller -> office, QoS 1
    pw/v1/<site>/<office_id>/tripack   office -> controller: {"trip_id", "version"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from controller.ledger import note
from controller.ledger.errors import NoteError
from protocols import topics

HEADER = "portwatch trip record v1"
TRIP, TRIPACK = "trip", "tripack"
# the broker drops a sender whose packet passes 17 KiB (README, broker hardening): a record
# stays under 15 KiB, its events trimmed to the latest ones that fit
MAX_RECORD_BYTES = 15_000
MAX_ACK_BYTES = 512


class RecordError(ValueError):
    """A trip record or ack that cannot be used; the message says why."""


def office_topic(site: str, office_id: str, channel: str) -> str:
    """``pw/v1/<site>/<office_id>/<trip|tripack>``."""
    if channel not in (TRIP, TRIPACK):
        raise RecordError(f"office channel {channel!r} is not {TRIP!r} or {TRIPACK!r}")
    return "/".join((topics.PREFIX, topics.VERSION, topics.check_id(site, "site"),
                     topics.check_id(office_id, "office id"), channel))


def office_filter(site: str, channel: str) -> str:
    """The filter of one office channel for every office at a site."""
    return "/".join((topics.PREFIX, topics.VERSION, topics.check_id(site, "site"), "+",
                     channel))


def office_of(topic: str, channel: str) -> str:
    """The office id in an office topic of ``channel``; RecordError otherwise."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != [topics.PREFIX, topics.VERSION] or parts[4] != channel:
        raise RecordError(f"not an office {channel} topic: {topic!r}")
    try:
        return topics.check_id(parts[3], "office id")
    except topics.TopicError as exc:
        raise RecordError(str(exc)) from exc


def record_text(record: dict[str, Any]) -> str:
    """The note text of a record (header line, one JSON line); RecordError when too big
    even with its events trimmed."""
    body = dict(record)
    events = list(body.get("events") or [])
    while True:
        line = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        text = f"{HEADER}\n{line}\n"
        if len(text.encode()) <= MAX_RECORD_BYTES:
            return text
        if not events:
            raise RecordError(f"trip record {record.get('trip_id')!r} is over "
                              f"{MAX_RECORD_BYTES} bytes without any event")
        events = events[len(events) // 2 + 1:] if len(events) > 1 else []
        body["events"] = events
        body["events_trimmed"] = True


def sign(text: str, signer: note.Signer) -> str:
    """The signed note of a record text."""
    return text + "\n" + signer.signature_line(text)


@dataclass(frozen=True, slots=True)
class Verified:
    """A record whose signature checked: its fields and the exact note received."""

    record: dict[str, Any]
    signed: str

    @property
    def trip_id(self) -> str:
        return str(self.record["trip_id"])

    @property
    def version(self) -> int:
        return int(self.record["version"])


def verify(data: bytes, log_key: note.Verifier, office_id: str) -> Verified:
    """Check a received record: a note signed by ``log_key``, for ``office_id``.

    RecordError says what is wrong (not a note, not signed by the log key, another office's,
    fields missing); such a record must not be acked.
    """
    try:
        signed = data.decode()
        parsed = note.parse(signed)
    except (UnicodeDecodeError, NoteError) as exc:
        raise RecordError(f"not a signed trip record: {exc}") from exc
    if parsed.verified_by(log_key) is not True:
        raise RecordError(f"not signed by the log key {log_key.vkey}: ignore it, and check "
                          "the key you pinned with `portwatch ledger key` at the port")
    header, _, rest = parsed.text.partition("\n")
    if header != HEADER:
        raise RecordError(f"signed note is not a trip record (header {header!r})")
    try:
        record = json.loads(rest)
    except ValueError as exc:
        raise RecordError(f"trip record is not JSON: {exc}") from exc
    if not isinstance(record, dict):
        raise RecordError("trip record is not a JSON object")
    if record.get("office") != office_id:
        raise RecordError(f"record for office {record.get('office')!r}, not {office_id!r}")
    for name, kind in (("trip_id", str), ("version", int), ("office_seq", int)):
        if not isinstance(record.get(name), kind):
            raise RecordError(f"trip record has no {name} ({kind.__name__})")
    return Verified(record, signed)


def ack_bytes(trip_id: str, version: int) -> bytes:
    """What an office publishes on its tripack topic."""
    return json.dumps({"trip_id": trip_id, "version": version},
                      separators=(",", ":")).encode()


def parse_ack(data: bytes) -> tuple[str, int]:
    """(trip_id, version) of an ack; RecordError when it is not one."""
    if len(data) > MAX_ACK_BYTES:
        raise RecordError(f"ack of {len(data)} bytes (at most {MAX_ACK_BYTES})")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"ack is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecordError("ack is not a JSON object")
    trip_id, version = doc.get("trip_id"), doc.get("version")
    if not isinstance(trip_id, str) or not trip_id or len(trip_id) > 128:
        raise RecordError("ack has no trip_id (a string of 1-128 characters)")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError("ack has no version (an integer from 1)")
    return trip_id, version
