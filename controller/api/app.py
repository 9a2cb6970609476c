"""The FastAPI app factory: wiring only; the resources live in routers/."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from controller.api.routers import devices, ingest, ledger, weighings
from controller.ingest.service import IngestService


def create_app(*, db_path: Path, site: str, ingest_service: IngestService | None = None) -> FastAPI:
    """Build the API over the store at ``db_path`` (ingest figures from ``ingest_service``)."""
    app = FastAPI(
        title="portwatch controller",
        version="0.1.0",
        description="Devices, weighings and ingest of a portwatch site. "
        "Authenticate with `Authorization: Bearer <token>` (create one with "
        "`portwatch token create`).",
    )
    app.state.db_path = db_path
    app.state.site = site
    app.state.ingest = ingest_service
    for module in (devices, weighings, ingest, ledger):
        app.include_router(module.router)

    @app.get("/healthz", tags=["health"], summary="Liveness, no token needed")
    def healthz() -> dict[str, object]:
        svc = app.state.ingest
        return {"ok": True, "broker_connected": bool(svc and svc.stats.connected)}

    return app
