"""The out-gate's recent decisions with their reasons (controller/gate_service.py makes them
in the ingest's batch; ``gate_decisions`` holds one per out-gate weighing)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from controller import auth
from controller.api.dependencies import Db, DeviceFilter, require
from controller.api.errors import responses
from controller.storage import commands as command_rows

router = APIRouter(prefix="/api/v1", tags=["gate"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))


class GateDecision(BaseModel):
    device_id: str = Field(description="the out-gate weighbridge")
    weighing_seq: int
    action: str = Field(description="open or deny")
    reasons: list[dict[str, Any]] = Field(
        description="why: the code and text of each (none for an open barrier)")
    order_id: str | None
    lot: str | None
    plate: str | None
    command_id: str | None = Field(description="the barrier command it issued")
    decided_ms: int
    net_kg: int | None = Field(description="the weighing's net")
    gross_kg: int | None


def to_decision(r: dict[str, Any]) -> GateDecision:
    """The API's view of one ``gate_decisions`` row (joined with its weighing)."""
    return GateDecision(
        device_id=r["device_id"], weighing_seq=r["weighing_seq"], action=r["action"],
        reasons=json.loads(r["reasons_json"] or "[]"), order_id=r["order_id"], lot=r["lot"],
        plate=r["plate"], command_id=r["command_id"], decided_ms=r["decided_ms"],
        net_kg=r["net_kg"], gross_kg=r["gross_kg"])


@router.get("/gate-decisions", response_model=list[GateDecision],
            summary="Out-gate decisions, latest first: open or deny, with every reason")
def list_gate_decisions(db: Db, device_id: DeviceFilter = None,
                        limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[GateDecision]:
    return [to_decision(r) for r in command_rows.recent_gate_decisions(
        db.conn, device_id=device_id, limit=limit)]
