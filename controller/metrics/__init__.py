"""Prometheus metrics of the controller, served at ``/metrics`` (controller/api/routers/metrics.py).

Two kinds, so that the ingest's hot path stays cheap:

- ``ingest``: what only the ingest sees as it happens (latencies, bytes, stored messages
  by kind): prometheus_client counters and histograms, updated once per batch;
- ``ingest_stats`` and ``store``: collectors that read, at scrape time, the figures the
  controller keeps anyway (the ingest's IngestStats, the store's devices, alerts and
  ledger), so nothing is counted twice and nothing is updated for a scrape that may never
  come.

``registry.build`` puts them into one CollectorRegistry per API app.
"""
