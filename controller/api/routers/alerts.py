"""Alerts raised by supervision rules: listing by state, one with its history, and the
operator's transitions (acknowledge, resolve)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from controller import alerts as alerts_mod
from controller import auth
from controller.api.dependencies import Actor, Db, DeviceFilter, require
from controller.api.errors import responses
from controller.api.models import Alert, AlertAck, AlertDetail, AlertResolve
from controller.storage import now_ms
from controller.storage import supervision as alert_rows

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))

AlertId = Annotated[int, Path(ge=1, le=2**62)]
# who acts on an alert: an operator (or an admin); an auditor and a release officer read
ACTORS = frozenset({"operator", "admin"})
Acting = [Depends(require(ACTORS))]


def _fields(r: dict[str, Any], now: int) -> dict[str, Any]:
    end = r["cleared_ms"] if r["cleared_ms"] is not None else now
    return dict(id=r["id"], rule=r["rule"], code=r["code"], device_id=r["device_id"],
                subject=r["subject"] or "", severity=r["severity"],
                detail=json.loads(r["detail_json"] or "{}"), state=alert_rows.alert_state(r),
                active=r["cleared_ms"] is None, raised_ts=r["raised_ts"],
                raised_ms=r["raised_ms"], age_s=round(max(0, end - r["raised_ms"]) / 1000, 1),
                acked_ms=r.get("acked_ms"), acked_by=r.get("acked_by"),
                ack_comment=r.get("ack_comment"), resolved_ms=r["cleared_ms"],
                resolved_by=r["cleared_by"], resolve_comment=r.get("resolve_comment"),
                cleared_ms=r["cleared_ms"], cleared_by=r["cleared_by"])


def to_alert(r: dict[str, Any], now: int) -> Alert:
    """The API's view of one ``alerts`` row."""
    return Alert(**_fields(r, now))


def to_detail(r: dict[str, Any], now: int) -> AlertDetail:
    """One alert with its history (``controller.alerts.get_alert``'s answer)."""
    return AlertDetail(**_fields(r, now), history=r["history"])


@router.get("", response_model=list[Alert],
            summary="Alerts, newest first: active ones (default) with their age, or by state")
def list_alerts(db: Db, state: Annotated[Literal["open", "acknowledged", "resolved", "active"]
                                         | None, Query(
                    description="open, acknowledged, resolved or active (open and "
                    "acknowledged); wins over active= and all=")] = None,
                active: Annotated[bool | None, Query(
                    description="true: still active (default); false: resolved; omit with "
                    "all=true for both")] = True,
                all: Annotated[bool, Query(description="active and resolved")] = False,
                device_id: DeviceFilter = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Alert]:
    now = now_ms()
    rows = alerts_mod.list_alerts(db, state=state, active=None if all else active,
                                  device_id=device_id, limit=limit)
    return [to_alert(r, now) for r in rows]


@router.get("/{alert_id}", response_model=AlertDetail,
            summary="One alert with its history: raised, acknowledged, resolved (who, when, "
            "comment)", responses=responses(404))
def get_alert(alert_id: AlertId, db: Db) -> AlertDetail:
    return to_detail(alerts_mod.get_alert(db, alert_id), now_ms())


@router.post("/{alert_id}/ack", response_model=AlertDetail,
             summary="Acknowledge an open alert with a comment: it stays active (someone is on "
             "it) until resolved; who, when and the comment go in the ledger",
             dependencies=Acting, responses=responses(403, 404, 409, 413))
def acknowledge_alert(alert_id: AlertId, body: AlertAck, db: Db, who: Actor) -> AlertDetail:
    return to_detail(alerts_mod.acknowledge(db, alert_id, actor=who, comment=body.comment),
                     now_ms())


@router.post("/{alert_id}/resolve", response_model=AlertDetail,
             summary="Resolve an active (open or acknowledged) alert with a comment; who, when "
             "and the comment go in the ledger", dependencies=Acting,
             responses=responses(403, 404, 409, 413))
def resolve_alert(alert_id: AlertId, body: AlertResolve, db: Db, who: Actor) -> AlertDetail:
    return to_detail(alerts_mod.resolve(db, alert_id, actor=who, comment=body.comment),
                     now_ms())
