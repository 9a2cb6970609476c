"""Alerts as operators handle them: open -> acknowledged -> resolved.

A rule raises an alert (open). An operator acknowledges it with a comment: someone is on
it; it stays active, and the rule raising the same alert again changes nothing. It is
resolved either by the rule that raised it clearing it (``rule:<name>``), or by an
operator with a comment (a one-off such as ``left_unweighed`` that no rule clears).
Each transition is an ``alert`` ledger decision (action raise, clear, acknowledge,
resolve) in the transaction that changes the row, so the audit rebuilds ``alerts`` from
the log (controller/audit_alerts.py).

Columns: ``acked_ms``, ``acked_by``, ``ack_comment``; resolution keeps the original
``cleared_ms``, ``cleared_by`` (and ``cleared_ts``, ``cleared_seq`` for a rule's fact)
plus ``resolve_comment``: the API serves them as ``resolved_*`` and keeps ``cleared_*``.
"""

from __future__ import annotations

from typing import Any

from controller.errors import Conflict, InvalidInput, NotFound
from controller.storage import Store, ledger_log, now_ms
from controller.storage import supervision as rows

COMMENT_MAX = 500
STATES = rows.STATES


def list_alerts(store: Store, *, active: bool | None = True, state: str | None = None,
                device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts, newest first: by ``state`` (open, acknowledged, resolved, active) if given,
    else active (default), resolved (False) or all (None)."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state {state!r} is not one of {', '.join(STATES)}")
    return rows.list_alerts(store, active=active, state=state, device_id=device_id,
                            limit=limit)


def get_alert(store: Store, alert_id: int) -> dict[str, Any]:
    """One alert row with its ``state`` and ``history``; NotFound when there is none."""
    alert = rows.get_alert(store, alert_id)
    if alert is None:
        raise NotFound(f"no alert {alert_id}: list them with GET /api/v1/alerts?state=active "
                       "or `portwatch alert list`")
    return {**alert, "state": rows.alert_state(alert), "history": history(alert)}


def history(alert: dict[str, Any]) -> list[dict[str, Any]]:
    """The alert's transitions in order: who, when, and the comment (each is also a ledger
    decision); a transition happens at most once, so the row holds them all."""
    out: list[dict[str, Any]] = [{"action": "raise", "by": f"rule:{alert['rule']}",
                                  "at_ms": alert["raised_ms"], "comment": ""}]
    if alert.get("acked_ms") is not None:
        out.append({"action": "acknowledge", "by": alert["acked_by"],
                    "at_ms": alert["acked_ms"], "comment": alert.get("ack_comment") or ""})
    if alert.get("cleared_ms") is not None:
        by = str(alert.get("cleared_by") or "")
        out.append({"action": "clear" if by.startswith("rule:") else "resolve", "by": by,
                    "at_ms": alert["cleared_ms"],
                    "comment": alert.get("resolve_comment") or ""})
    return out


def _comment(comment: str) -> str:
    text = comment.strip()
    if not 1 <= len(text) <= COMMENT_MAX:
        raise InvalidInput(f"a comment of 1-{COMMENT_MAX} characters is required: say what "
                           "was done or who is on it")
    return text


def acknowledge(store: Store, alert_id: int, *, actor: str, comment: str) -> dict[str, Any]:
    """Acknowledge an open alert: it stays active with who, when and the comment.

    Conflict when it is already acknowledged or resolved (the answer says by whom)."""
    text = _comment(comment)
    now = now_ms()
    with store.transaction() as conn:
        alert = rows.alert_in(conn, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}: list them with GET /api/v1/alerts")
        if alert["cleared_ms"] is not None:
            raise Conflict(f"alert {alert_id} was already resolved by {alert['cleared_by']}")
        if alert["acked_ms"] is not None:
            raise Conflict(f"alert {alert_id} was already acknowledged by {alert['acked_by']}; "
                           "resolve it when it is dealt with")
        rows.acknowledge_alert(conn, alert_id, acked_ms=now, acked_by=actor, comment=text)
        ledger_log.append_decision(conn, "alert", actor, {
            "alert_id": alert_id, "action": "acknowledge", "code": alert["code"],
            "device_id": alert["device_id"], "subject": alert["subject"], "comment": text},
            now)
    return get_alert(store, alert_id)


def resolve(store: Store, alert_id: int, *, actor: str, comment: str) -> dict[str, Any]:
    """Resolve an active alert (open or acknowledged) on an operator's word.

    Conflict when it is already resolved. A rule that later finds the same condition again
    raises a new alert."""
    text = _comment(comment)
    now = now_ms()
    with store.transaction() as conn:
        alert = rows.alert_in(conn, alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id}: list them with GET /api/v1/alerts")
        if alert["cleared_ms"] is not None:
            raise Conflict(f"alert {alert_id} was already resolved by {alert['cleared_by']}")
        rows.resolve_alert(conn, alert_id, resolved_ms=now, resolved_by=actor, comment=text)
        ledger_log.append_decision(conn, "alert", actor, {
            "alert_id": alert_id, "action": "resolve", "code": alert["code"],
            "device_id": alert["device_id"], "subject": alert["subject"], "comment": text},
            now)
    return get_alert(store, alert_id)
