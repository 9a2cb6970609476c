"""Commands to devices (PROTOCOL.md, Commands): issue, wire form, acknowledgement, expiry.

The functional core of the controller's side; the shell that publishes and re-sends is
``controller/gate_service.py``. Every function here that writes runs inside the caller's
transaction:

- ``issue`` stores a pending command and its ``command`` ledger decision together, so a
  command is either decided and recorded or neither; it goes out only after the commit
  (a crash in between leaves it pending: the sender finds it at start and sends it).
- ``take_ack`` applies a device's ``cmdack``: ``done``, ``applied`` or ``restarting`` (or
  the ``duplicate`` of one) makes it ``acked``; ``expired``, ``refused`` and ``failed``
  make it ``failed``. The ``cmdack`` message itself goes to the ledger (the ingest
  records every accepted uplink), so no separate decision is written for it.
- ``expire_due`` settles the pending commands past their expiry as ``expired`` and raises
  the critical alert ``command_unacknowledged`` for each (one alert per command).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from typing import Any

from controller.errors import InvalidInput
from controller.storage import commands as rows
from controller.storage import ledger_log
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert
from protocols import bodies, envelope, topics

RULE = "commands"  # the alert's rule name: the controller's own check, not a rules/ rule
DEFAULT_TTL_MS = 60_000  # a truck waits at the barrier; after a minute a person decides
RESEND_MS = 3_000
ACKED_RESULTS = ("done", "applied", "restarting")


def new_id() -> str:
    """A fresh command id (random: unique across controller restarts)."""
    return "c-" + secrets.token_hex(8)


def issue(conn: sqlite3.Connection, *, device_id: str, kind: str, body: dict[str, Any],
          now_ms: int, device_offset_ms: int | None, ttl_ms: int = DEFAULT_TTL_MS,
          actor: str = "controller", cause: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store a new pending command for ``device_id`` and its ledger decision; its row.

    ``body`` holds everything but ``id`` and ``expires_ts``, which are set here:
    ``expires_ts`` is the expiry in the device's clock (``now_ms + ttl_ms`` moved by
    ``device_offset_ms``, the device's clock minus the controller's, from its last health;
    None: taken as 0). ``cause`` names what the command answers, for the ledger.
    """
    command_id = new_id()
    offset = device_offset_ms or 0
    full = {**body, "id": command_id, "expires_ts": now_ms + ttl_ms + offset}
    problem = bodies.check_command(kind, full)
    if problem:
        raise InvalidInput(f"command for {device_id}: {problem}")
    rows.insert(conn, command_id, device_id, kind, full, now_ms, now_ms + ttl_ms)
    decision: dict[str, Any] = {"command_id": command_id, "device_id": device_id,
                                "kind": kind, "body": full, "expires_ms": now_ms + ttl_ms}
    if cause is not None:
        decision["cause"] = cause
    ledger_log.append_decision(conn, "command", actor, decision, now_ms)
    found = rows.get(conn, command_id)
    assert found is not None
    return found


def wire(site: str, row: dict[str, Any], key_id: str, secret: bytes,
         now_ms: int) -> tuple[str, bytes]:
    """(topic, signed bytes) of one stored command, sealed with the device's key."""
    topic = topics.topic(site, row["device_id"], "cmd")
    fields = envelope.make(row["device_id"], 0, 0, now_ms, row["kind"],
                           json.loads(row["body_json"]))
    return topic, envelope.seal(secret, key_id, topic, fields)


def take_ack(conn: sqlite3.Connection, device_id: str, body: dict[str, Any],
             received_ms: int) -> tuple[str, str] | None:
    """Apply one authentic ``cmdack``; None, or (rejection reason, detail):
    ``unknown_command`` when it names no command of this device, ``duplicate`` when the
    same acknowledgement was already taken (a QoS 1 redelivery, a replay)."""
    row = rows.get(conn, str(body["id"]))
    if row is None or row["device_id"] != device_id:
        return "unknown_command", f"no command {str(body['id'])[:40]!r} was sent to {device_id!r}"
    if row["ack_json"] is not None and json.loads(row["ack_json"]) == dict(body):
        return "duplicate", f"this acknowledgement of command {row['id']} was already taken"
    result = body["result"]
    first = body.get("detail", "") if result == "duplicate" else result
    state = "acked" if first in ACKED_RESULTS else "failed"
    if not rows.settle(conn, row["id"], state, dict(body), received_ms):
        rows.record_late_ack(conn, row["id"], dict(body), received_ms)
    return None


def due(conn: sqlite3.Connection, now_ms: int, resend_ms: int = RESEND_MS) -> list[dict[str, Any]]:
    """Pending, unexpired commands never sent or last sent ``resend_ms`` ago or more."""
    return [r for r in rows.pending(conn) if r["expires_ms"] > now_ms and (
        r["last_sent_ms"] is None or now_ms - r["last_sent_ms"] >= resend_ms)]


def expire_due(conn: sqlite3.Connection, now_ms: int) -> list[dict[str, Any]]:
    """Settle pending commands past their expiry as ``expired``, each with its alert."""
    done = []
    for r in rows.pending(conn):
        if r["expires_ms"] > now_ms:
            continue
        if not rows.settle(conn, r["id"], "expired", None, now_ms):
            continue
        body = json.loads(r["body_json"])
        apply_alert(conn, RULE, Alert(
            code="command_unacknowledged", device_id=r["device_id"], active=True,
            severity="critical", subject=f"command {r['id']}",
            detail={"command_id": r["id"], "kind": r["kind"], "action": body.get("action"),
                    "weighing_seq": body.get("weighing_seq"), "attempts": r["attempts"],
                    "issued_ms": r["issued_ms"], "expires_ms": r["expires_ms"]}),
            device_ts=None, received_ms=now_ms)
        done.append(r)
    return done
