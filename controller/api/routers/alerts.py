"""Alerts raised by supervision rules: the active ones with their age, and acknowledging."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from controller import alerts as alerts_mod
from controller import auth
from controller.api.dependencies import Actor, Db, DeviceFilter, require
from controller.api.errors import responses
from controller.api.models import Alert, AlertAck
from controller.storage import now_ms

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))


def to_alert(r: dict[str, Any], now: int) -> Alert:
    end = r["cleared_ms"] if r["cleared_ms"] is not None else now
    return Alert(id=r["id"], rule=r["rule"], code=r["code"], device_id=r["device_id"],
                 subject=r["subject"] or "", severity=r["severity"],
                 detail=json.loads(r["detail_json"] or "{}"), active=r["cleared_ms"] is None,
                 raised_ts=r["raised_ts"], raised_ms=r["raised_ms"],
                 age_s=round(max(0, end - r["raised_ms"]) / 1000, 1),
                 cleared_ms=r["cleared_ms"], cleared_by=r["cleared_by"])


@router.get("", response_model=list[Alert],
            summary="Alerts, newest first: active ones (default) with their age, or all")
def list_alerts(db: Db, active: Annotated[bool | None, Query(
                    description="true: still active (default); false: cleared; omit with "
                    "all=true for both")] = True,
                all: Annotated[bool, Query(description="active and cleared")] = False,
                device_id: DeviceFilter = None,
                limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Alert]:
    now = now_ms()
    rows = alerts_mod.list_alerts(db, active=None if all else active, device_id=device_id,
                                  limit=limit)
    return [to_alert(r, now) for r in rows]


@router.post("/{alert_id}/ack", response_model=Alert,
             summary="Acknowledge an active alert: it is closed, with who and why, in the "
             "ledger", responses=responses(404, 409, 413))
def acknowledge_alert(alert_id: Annotated[int, Path(ge=1, le=2**62)], body: AlertAck, db: Db,
                      who: Actor) -> Alert:
    return to_alert(alerts_mod.acknowledge(db, alert_id, actor=who, note=body.note), now_ms())
