"""Ingest figures and the rejected-message log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from controller import auth
from controller.api.dependencies import Db, TextFilter, live_stats, require
from controller.api.errors import responses
from controller.api.models import IngestStats, Rejection, RejectionCount
from controller.storage import rejections, views

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))


@router.get("/stats", response_model=IngestStats, summary="Stored and rejected counts")
def ingest_stats(db: Db, request: Request) -> IngestStats:
    counts = views.counts(db)
    return IngestStats(stored_events=counts["events"], stored_weighings=counts["weighings"],
                       rejected_by_reason=views.rejected_by_reason(db),
                       live=live_stats(request.app))


@router.get("/rejections", response_model=list[Rejection],
            summary="Rejected messages, newest first, with the reason")
def list_rejections(db: Db, reason: TextFilter = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[Rejection]:
    return [Rejection(**r) for r in views.rejections(db, reason=reason, limit=limit)]


@router.get("/rejection-counts", response_model=list[RejectionCount],
            summary="Rejections counted per device, reason and window, newest window first")
def rejection_counts(db: Db, device_id: str | None = None, reason: str | None = None,
                     since_ms: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 100
                     ) -> list[RejectionCount]:
    return [RejectionCount(**r) for r in rejections.buckets(
        db, device_id=device_id, reason=reason, since_ms=since_ms, limit=limit)]
