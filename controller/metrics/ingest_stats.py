"""The running ingest's IngestStats as Prometheus metrics, read at scrape time.

IngestStats already counts what arrived, what was refused and why, the queue and the
link (controller/ingest/stats.py, also served by GET /api/v1/ingest/stats): this
collector only renames them, so rejections by reason are counted in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.ingest.stats import IngestStats
from controller.supervision.rules import RULES


class IngestStatsCollector(Collector):
    """Counters and gauges of ``stats()`` (nothing when the API runs without an ingest)."""

    def __init__(self, stats: Callable[[], IngestStats | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        if s is None:
            return
        yield CounterMetricFamily("portwatch_ingest_received_messages",
                                  "MQTT messages the ingest took from its queue",
                                  value=s.received)
        rejected = CounterMetricFamily(
            "portwatch_ingest_rejected_messages",
            "Messages refused, by reason (bad_hmac, duplicate, stale, unknown_device, …)",
            labels=["reason"])
        for reason, n in sorted(s.rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield CounterMetricFamily("portwatch_ingest_dropped_messages",
                                  "Messages dropped because the ingest queue was full (the "
                                  "devices resend them: no ack covers them)",
                                  value=s.overflow_dropped)
        yield CounterMetricFamily("portwatch_ingest_batches", "Batches committed",
                                  value=s.batches)
        yield CounterMetricFamily("portwatch_ingest_batch_failures",
                                  "Batches a step failed on (rolled back, resent)",
                                  value=s.batch_failures)
        yield CounterMetricFamily("portwatch_ingest_acks_published",
                                  "Acknowledgements published to devices",
                                  value=s.acks_published)
        yield GaugeMetricFamily("portwatch_ingest_queue_depth_messages",
                                "Messages waiting in the ingest queue", value=s.queue_depth)
        yield GaugeMetricFamily("portwatch_ingest_queue_capacity_messages",
                                "The ingest queue's bound (beyond it messages are dropped)",
                                value=s.queue_max)
        yield GaugeMetricFamily("portwatch_ingest_queue_peak_messages",
                                "The deepest the ingest queue has been", value=s.queue_peak)
        yield GaugeMetricFamily("portwatch_ingest_last_batch_size_messages",
                                "Messages in the last batch committed",
                                value=s.last_batch_size)
        yield GaugeMetricFamily("portwatch_ingest_broker_connected",
                                "1 while the ingest is connected to the broker",
                                value=int(s.connected))
        yield CounterMetricFamily("portwatch_ingest_broker_connects",
                                  "Connections made to the broker", value=s.connects)
        yield CounterMetricFamily("portwatch_supervision_findings",
                                  "Findings (alerts, holds, trip events) from supervision",
                                  value=s.findings)
        failures = CounterMetricFamily("portwatch_supervision_rule_failures",
                                       "Times a supervision rule raised, by rule",
                                       labels=["rule"])
        # every rule, failed or not: a series that exists only after a failure cannot be
        # graphed or alerted on with rate()
        counts = {r.name: 0 for r in RULES}
        counts.update({str(k): int(v) for k, v in (s.supervision.get("failures") or {}).items()})
        for rule, n in sorted(counts.items()):
            failures.add_metric([rule], n)
        yield failures
