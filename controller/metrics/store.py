"""Gauges read from the store at scrape time: devices by state, active alerts, the ledger.

A custom collector, not gauges kept up to date: the store is the truth, and reading it
when Prometheus asks (a handful of small queries, controller/storage/metrics_reads.py)
costs less than touching a gauge on every message that may change it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.metrics import figures
from controller.storage import ledger_log, metrics_reads, now_ms, open_store


class StoreCollector(Collector):
    """Reads the store at ``db_path()`` on each scrape (a StoreError makes the scrape 503)."""

    def __init__(self, db_path: Callable[[], Path]) -> None:
        self.db_path = db_path

    def collect(self) -> Iterator[Metric]:
        with open_store(self.db_path(), migrate=False) as store:
            conn = store.conn
            presence = metrics_reads.device_presence(conn)
            alerts = metrics_reads.active_alerts(conn)
            entries = ledger_log.size(conn)
            latest = ledger_log.latest_checkpoint(conn)
            cosigned_ms = metrics_reads.newest_cosigned_checkpoint_ms(conn)
        now = now_ms()

        devices = GaugeMetricFamily(
            "portwatch_devices", "Registered devices by state (online, offline, stale: "
            "online but silent for a minute, never seen, decommissioned)", labels=["state"])
        for state, n in figures.devices_by_state(presence, now).items():
            devices.add_metric([state], n)
        yield devices

        active = GaugeMetricFamily(
            "portwatch_alerts_active", "Alerts not resolved yet, by severity and state "
            "(open, or acknowledged by an operator)", labels=["severity", "state"])
        for severity, acked, n in alerts:
            active.add_metric([severity, "acknowledged" if acked else "open"], n)
        yield active

        yield GaugeMetricFamily("portwatch_ledger_entries",
                                "Entries in the tamper-evident ledger", value=entries)
        signed_age = figures.age_s(latest[4] if latest else None, now)
        if signed_age is not None:  # no series before the first checkpoint: absent() alerts
            yield GaugeMetricFamily(
                "portwatch_ledger_checkpoint_age_seconds",
                "Seconds since the newest signed ledger checkpoint was signed",
                value=signed_age)
            yield GaugeMetricFamily(
                "portwatch_ledger_uncheckpointed_entries",
                "Ledger entries appended after the newest signed checkpoint",
                value=max(0, entries - latest[1]) if latest else entries)
        cosigned_age = figures.age_s(cosigned_ms, now)
        if cosigned_age is not None:
            yield GaugeMetricFamily(
                "portwatch_ledger_cosigned_checkpoint_age_seconds",
                "Seconds since the newest checkpoint a witness cosigned was signed",
                value=cosigned_age)
