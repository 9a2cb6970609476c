"""Ingest figures and the rejected-message log."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from controller import auth
from controller.api.dependencies import Db, require
from controller.api.models import IngestStats, Rejection

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"],
                   dependencies=[Depends(require(auth.READERS))])


@router.get("/stats", response_model=IngestStats, summary="Stored and rejected counts")
def ingest_stats(db: Db, request: Request) -> IngestStats:
    rejected = {r["reason"]: r["n"] for r in
                db.query("SELECT reason, count(*) AS n FROM rejections GROUP BY reason")}
    service = request.app.state.ingest
    live = dataclasses.asdict(service.stats) if service is not None else {}
    return IngestStats(stored_events=db["messages"].count, stored_weighings=db["weighings"].count,
                       rejected_by_reason=rejected, live=live)


@router.get("/rejections", response_model=list[Rejection],
            summary="Rejected messages, newest first, with the reason")
def list_rejections(db: Db, reason: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Rejection]:
    if reason is None:
        rows = db.query("SELECT * FROM rejections ORDER BY id DESC LIMIT ?", [limit])
    else:
        rows = db.query("SELECT * FROM rejections WHERE reason=? ORDER BY id DESC LIMIT ?",
                        [reason, limit])
    return [Rejection(**r) for r in rows]
