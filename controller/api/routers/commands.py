"""The controller's commands to devices (barrier open / deny) and their delivery state."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from controller import auth
from controller.api.dependencies import Db, DeviceFilter, require
from controller.api.errors import responses
from controller.storage import commands as rows

router = APIRouter(prefix="/api/v1/commands", tags=["commands"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))
STATES = ("pending", "acked", "expired", "failed")


class Command(BaseModel):
    id: str
    device_id: str
    kind: str = Field(description="barrier")
    body: dict[str, Any] = Field(description="action, weighing_seq, expires_ts, reason, "
                                 "display (protocols/PROTOCOL.md, Commands)")
    issued_ms: int
    expires_ms: int
    attempts: int = Field(description="deliveries tried")
    last_sent_ms: int | None
    state: str = Field(description="pending, acked, expired or failed")
    ack: dict[str, Any] | None = Field(description="the device's cmdack body, once it came")
    acked_ms: int | None


def to_command(r: dict[str, Any]) -> Command:
    return Command(id=r["id"], device_id=r["device_id"], kind=r["kind"],
                   body=json.loads(r["body_json"]), issued_ms=r["issued_ms"],
                   expires_ms=r["expires_ms"], attempts=r["attempts"],
                   last_sent_ms=r["last_sent_ms"], state=r["state"],
                   ack=json.loads(r["ack_json"]) if r["ack_json"] else None,
                   acked_ms=r["acked_ms"])


@router.get("", response_model=list[Command],
            summary="Commands to devices, newest first, with their delivery state")
def list_commands(db: Db, device_id: DeviceFilter = None,
                  state: Annotated[str | None, Query(
                      pattern="^(" + "|".join(STATES) + ")$")] = None,
                  limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Command]:
    return [to_command(r) for r in rows.list_commands(db.conn, device_id=device_id,
                                                      state=state, limit=limit)]
