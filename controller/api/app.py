"""The FastAPI app factory: wiring only; the resources live in routers/."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from controller import dashboard
from controller.api import docs, errors
from controller.api.gate import Gate
from controller.api.routers import alerts, devices, ingest, ledger, lots, tokens, weighings
from controller.api.routers import blends as blends_router
from controller.api.routers import calibrations as calibrations_router
from controller.api.routers import commands as commands_router
from controller.api.routers import device_config as device_config_router
from controller.api.routers import events as events_router
from controller.api.routers import firmware as firmware_router
from controller.api.routers import gate_decisions as gate_decisions_router
from controller.api.routers import live as live_router
from controller.api.routers import lot_records as lot_records_router
from controller.api.routers import metrics as metrics_router
from controller.api.routers import offices as offices_router
from controller.api.routers import orders as orders_router
from controller.api.routers import samples as samples_router
from controller.api.routers import session as session_router
from controller.api.routers import site as site_router
from controller.api.routers import trace as trace_router
from controller.api.routers import trains as trains_router
from controller.api.routers import trips as trips_router
from controller.ingest.stats import IngestStats
from controller.metrics import registry as metrics_registry
from controller.metrics.ingest import IngestMetrics


def create_app(*, db_path: Path, site: str, ingest_stats: IngestStats | None = None,
               ingest_metrics: IngestMetrics | None = None,
               metrics_public: bool = False) -> FastAPI:
    """Build the API over the store at ``db_path`` (live ingest figures from ``ingest_stats``).

    ``/metrics`` serves Prometheus metrics: the store's, ``ingest_stats``' and
    ``ingest_metrics``' (the running ingest's latencies); with a token of any role, or
    without one when ``metrics_public``.

    Requests open the store without migrating it: its owner (the controller, or a test's
    fixture) made or migrated it before serving. A missing store answers 503.
    """
    app = FastAPI(
        title="portwatch controller",
        version="0.1.0",
        description="Devices, weighings, alerts, ingest and the ledger of a portwatch site. "
        "Authenticate with `Authorization: Bearer <token>` (create one with "
        "`portwatch token create`). The operators' dashboard: [/ui/](/ui/).",
        docs_url=None,
    )
    app.state.db_path = db_path
    app.state.site = site
    app.state.ingest = ingest_stats
    app.state.metrics_public = metrics_public
    app.state.metrics = metrics_registry.build(db_path=lambda: app.state.db_path,
                                               stats=lambda: app.state.ingest,
                                               ingest=ingest_metrics)
    for module in (devices, weighings, alerts, ingest, ledger, tokens):
        app.include_router(module.router)
    app.include_router(lots.router)  # gate control: lot holds and commands to devices
    app.include_router(lot_records_router.router)  # lots from vessel to release
    app.include_router(offices_router.router)  # destination offices' trip feed
    app.include_router(orders_router.router)  # transfer orders
    app.include_router(trips_router.router)  # trips, their events, alerts and tracks
    app.include_router(trains_router.router)  # rail manifests, passages, release
    app.include_router(commands_router.router)
    app.include_router(firmware_router.router)  # over-the-air rollouts (admin)
    app.include_router(firmware_router.downloads)  # /fw/: devices' download tokens
    app.include_router(device_config_router.router)  # remote config and restart
    app.include_router(blends_router.router)  # ore blends and lots' recall lists
    app.include_router(calibrations_router.router)  # certificates, mass balance
    app.include_router(samples_router.router)  # lab samples and the lot of each
    app.include_router(trace_router.router)  # trace back/forward, a lot's EPCIS history
    app.include_router(metrics_router.router)  # GET /metrics for Prometheus
    app.include_router(session_router.router)  # whoami, the dashboard's stream cookie
    app.include_router(site_router.router)  # the site's geometry, for the map
    app.include_router(gate_decisions_router.router)  # the out-gate's decisions, reasons
    app.include_router(live_router.router)  # trucks in transit where they are now
    app.include_router(events_router.router)  # live changes as server-sent events
    errors.install(app)
    docs.install(app)
    dashboard.install(app)  # /ui/: static files, no token; their data calls need one

    # the token is checked before FastAPI reads the body or the query (controller/api/gate.py)
    app.add_middleware(Gate, db_path=lambda: app.state.db_path,
                       metrics_public=lambda: bool(app.state.metrics_public))

    @app.get("/healthz", tags=["health"], summary="Liveness, no token needed")
    def healthz() -> dict[str, object]:
        stats: IngestStats | None = app.state.ingest
        return {"ok": True, "broker_connected": bool(stats and stats.connected)}

    return app

