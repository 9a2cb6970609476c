"""Alerts as operators handle them: listing, and acknowledging (closing) an active one.

Rules raise and clear alerts (controller/supervision); an operator closes a one-off alert
(a vehicle that left unweighed) once it has been dealt with. Closing is a ledger decision
with the operator's token name and note.
"""

from __future__ import annotations

from typing import Any

from controller.errors import Conflict, NotFound
from controller.storage import Store, ledger_log, now_ms
from controller.storage import supervision as rows


def list_alerts(store: Store, *, active: bool | None = True, device_id: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first: active (default), cleared (False) or all (None)."""
    return rows.list_alerts(store, active=active, device_id=device_id, limit=limit)


def acknowledge(store: Store, alert_id: int, *, actor: str, note: str = "") -> dict[str, Any]:
    """Close an active alert on an operator's word."""
    now = now_ms()
    with store.transaction() as conn:
        alert = rows.get_alert(store, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}: list them with GET /api/v1/alerts")
        if alert["cleared_ms"] is not None:
            raise Conflict(f"alert {alert_id} was already closed by {alert['cleared_by']}")
        rows.clear_alert(conn, alert_id, cleared_ts=None, cleared_ms=now, cleared_seq=None,
                         cleared_by=actor)
        ledger_log.append_decision(conn, "alert", actor, {
            "alert_id": alert_id, "action": "acknowledge", "code": alert["code"],
            "device_id": alert["device_id"], "subject": alert["subject"], "note": note}, now)
    found = rows.get_alert(store, alert_id)
    assert found is not None
    return found
