"""The ``device_key_mismatch`` alert: a birth announced a public key other than the one
registered for the device.

Births are state messages, not custody facts, so this is no rule of ``rules/`` (they read
custody events): the ingest writer raises it inside the batch's transaction when it
refuses to adopt the offered key, and an admin's key registration clears it. It stays
active until then: either the device was replaced or re-flashed (an admin registers the
new key after checking) or someone else speaks with its provisioning secret.
"""

from __future__ import annotations

import sqlite3

from controller.storage import ledger_log
from controller.storage import supervision as rows

RULE = "device_keys"
CODE = "device_key_mismatch"


def raise_mismatch(conn: sqlite3.Connection, *, device_id: str, registered: str, offered: str,
                   device_ts: int, received_ms: int) -> bool:
    """Raise the alert (one per offered key while active); False when it already is."""
    subject = f"pub {offered[:16]}"
    if rows.active_alert_id(conn, RULE, device_id, CODE, subject) is not None:
        return False
    detail = {"registered": registered, "offered": offered,
              "what_to_do": "if the device was replaced or re-flashed, check it and register "
              "its key with `portwatch device set-key`; otherwise treat its provisioning "
              "secret as stolen and rotate it"}
    alert_id = rows.raise_alert(conn, rule=RULE, code=CODE, device_id=device_id,
                                subject=subject, severity="critical", detail=detail,
                                raised_ts=device_ts, raised_ms=received_ms, raised_seq=None)
    ledger_log.append_decision(conn, "alert", f"rule:{RULE}", {
        "alert_id": alert_id, "action": "raise", "code": CODE, "device_id": device_id,
        "subject": subject, "severity": "critical", "detail": detail, "ts": device_ts,
        "seq": None}, received_ms)
    return True


def clear_mismatches(conn: sqlite3.Connection, *, device_id: str, actor: str,
                     now_ms: int) -> int:
    """Clear every active mismatch alert of a device (an admin registered its key)."""
    cleared = 0
    for alert in rows.active_alerts(conn, RULE, device_id, CODE):
        rows.clear_alert(conn, alert["id"], cleared_ts=None, cleared_ms=now_ms,
                         cleared_seq=None, cleared_by=actor)
        ledger_log.append_decision(conn, "alert", actor, {
            "alert_id": alert["id"], "action": "clear", "code": CODE, "device_id": device_id,
            "subject": alert["subject"], "ts": None, "seq": None}, now_ms)
        cleared += 1
    return cleared
