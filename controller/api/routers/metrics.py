"""``GET /metrics``: the controller's Prometheus metrics (controller/metrics/).

Any live API token may scrape (every role reads the figures on the dashboards anyway);
a controller started with ``--metrics-public`` serves it without one, for a scraper on a
network that is trusted. The Gate (controller/api/gate.py) checks the token first, as it
does for /api/; the dependency here states it in the OpenAPI document and checks it for an
app built without the Gate.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from controller import auth
from controller.api.dependencies import require
from controller.api.errors import responses

_bearer = HTTPBearer(auto_error=False, description="API token: `Authorization: Bearer pwt_...`")
_any_role = require(auth.READERS)
# the classic text format: every Prometheus version reads it
MEDIA_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def scraper(request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Any role's live token, unless the controller serves /metrics openly."""
    if not request.app.state.metrics_public:
        _any_role(request, creds)


router = APIRouter(tags=["metrics"], dependencies=[Depends(scraper)])


@router.get("/metrics", summary="Prometheus metrics (text format 0.0.4)",
            response_class=Response,
            responses={200: {"description": "the metrics, Prometheus' text format",
                             "content": {MEDIA_TYPE: {"schema": {"type": "string"}}}},
                       **responses(401, 422, 503)})
def metrics(request: Request) -> Response:
    """Every portwatch_* metric, read now (the store's gauges are computed per scrape)."""
    return Response(generate_latest(request.app.state.metrics), media_type=MEDIA_TYPE)
