"""One CollectorRegistry per API app: the store's gauges, the ingest's figures, the process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics

from controller.ingest.stats import IngestStats
from controller.metrics.ingest import IngestMetrics
from controller.metrics.ingest_stats import IngestStatsCollector
from controller.metrics.store import StoreCollector


def build(*, db_path: Callable[[], Path], stats: Callable[[], IngestStats | None],
          ingest: IngestMetrics | None) -> CollectorRegistry:
    """A registry whose collectors read ``db_path()`` and ``stats()`` at each scrape (the
    app may change either after it was built) plus ``ingest``'s own metrics when given."""
    # no *_created series: the process start time says the same, and they double the text
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(StoreCollector(db_path))
    registry.register(IngestStatsCollector(stats))
    if ingest is not None:
        registry.register(ingest)
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, resident memory, fds
    return registry
