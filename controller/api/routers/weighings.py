"""Weighings and the alarm events reported by weighbridges."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from controller import auth
from controller.api.dependencies import Db, DeviceFilter, TextFilter, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN, MS_MAX, ROWS_MAX, SEQ_MAX, Alarm, Weighing
from controller.errors import NotFound
from controller.storage import views

router = APIRouter(prefix="/api/v1", tags=["weighings"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))

Limit = Annotated[int, Query(ge=1, le=10_000)]


@router.get("/weighings", response_model=list[Weighing],
            summary="Weighings, newest first, filtered by device, plate, device time and "
            "plausibility flags")
def list_weighings(
    db: Db,
    device_id: DeviceFilter = None,
    plate: TextFilter = None,
    since_ms: Annotated[int | None, Query(ge=0, le=MS_MAX, description="device time, ms")] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=MS_MAX, description="device time, ms")] = None,
    limit: Limit = 100,
    offset: Annotated[int, Query(ge=0, le=ROWS_MAX)] = 0,
    flagged: Annotated[bool | None, Query(
        description="true: only weighings with plausibility flags; false: only those "
        "without")] = None,
) -> list[Weighing]:
    return [_weighing(r) for r in views.weighings(
        db, device_id=device_id, plate=plate, since_ms=since_ms, until_ms=until_ms,
        limit=limit, offset=offset, flagged=flagged)]


def _weighing(r: dict[str, Any]) -> Weighing:
    flags = r.pop("flags_json", None)
    r["device_signed"] = bool(r.get("device_signed"))
    return Weighing(**r, flags=None if flags is None else json.loads(flags))


@router.get("/weighings/{device_id}/{seq}", response_model=Weighing, summary="One weighing",
            responses=responses(404))
def get_weighing(device_id: Annotated[str, Path(pattern=ID_PATTERN)],
                 seq: Annotated[int, Path(ge=1, le=SEQ_MAX)], db: Db) -> Weighing:
    row = views.weighing(db, device_id, seq)
    if row is None:
        raise NotFound(f"no weighing {device_id}/{seq}")
    return _weighing(row)


def _alarm(r: dict[str, Any]) -> Alarm:
    return Alarm(device_id=r["device_id"], seq=r["seq"], alarm=r["alarm"], state=r["state"],
                 detail=json.loads(r["detail_json"] or "{}"), device_ts=r["device_ts"],
                 received_ms=r["received_ms"], leaf_index=r.get("leaf_index"),
                 entry_hash=r.get("entry_hash"), device_signed=bool(r.get("device_signed")))


@router.get("/alarms", response_model=list[Alarm],
            summary="Device alarm events as sent (raised and cleared, one row each), newest "
            "first; /api/v1/alerts pairs them into active alerts")
def list_alarms(db: Db, device_id: DeviceFilter = None, limit: Limit = 100) -> list[Alarm]:
    return [_alarm(r) for r in views.alarms(db, device_id=device_id, limit=limit)]
