"""`portwatch bench` as a library: a tiny run through real Mosquitto loses nothing.

Not a timed test: no thresholds on speed, only on completeness of delivery and of the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools import bench_pipelines
from tools.bench import BenchError, BenchParams, run_bench
from tools.bench_agents import percentiles_ms

TOP_KEYS = {"benchmark", "ok", "pipeline", "stored_msgs_per_s", "span_s", "durable_signal",
            "latency_ms", "latency_ms_saturated", "latency_measured", "latency_counts",
            "counts", "cpu_s", "baseline", "ratio_vs_baseline", "variants", "broker", "params",
            "machine", "duration_s"}
COUNT_KEYS = {"sent", "stored", "duplicates", "lost", "rejected", "resends", "published"}
LATENCY_KEYS = {"p50", "p90", "p99", "max", "samples", "load"}


def _tiny(**overrides: object) -> BenchParams:
    base: dict[str, object] = {"agents": 2, "messages": 50, "latency_rate": 200.0,
                               "latency_s": 0.5, "sys_wait_s": 0.0}
    return BenchParams(**{**base, **overrides})  # type: ignore[arg-type]


def test_bench_tiny_run_stores_everything_and_reports_every_key(tmp_path: Path) -> None:
    doc = run_bench(_tiny(), workdir=tmp_path)
    json.dumps(doc)  # one JSON document
    assert doc.keys() >= TOP_KEYS
    assert doc["ok"] is True
    assert doc["counts"].keys() >= COUNT_KEYS
    assert doc["counts"]["sent"] == doc["counts"]["stored"] == 100
    assert doc["counts"]["lost"] == 0 and doc["counts"]["duplicates"] == 0
    assert doc["latency_counts"]["lost"] == 0 and doc["latency_counts"]["sent"] == 100
    assert doc["baseline"]["counts"]["stored"] == 100 and doc["baseline"]["msgs_per_s"] > 0
    assert doc["stored_msgs_per_s"] > 0 and doc["ratio_vs_baseline"] > 0
    assert doc["latency_ms"].keys() >= LATENCY_KEYS and doc["latency_ms"]["samples"] == 100
    assert doc["latency_ms_saturated"].keys() >= LATENCY_KEYS
    assert doc["broker"]["dropped_messages"] in (0, None)
    assert {"agents", "messages", "payload_bytes", "batch_max"} <= doc["params"].keys()
    assert {"cores", "python", "mosquitto"} <= doc["machine"].keys()


def test_bench_second_pipeline_is_reported_as_a_variant(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench_pipelines.PIPELINES, "ingest-again",
                        bench_pipelines.IngestPipeline)
    doc = run_bench(_tiny(messages=20, latency_rate=0.0, pipelines=("ingest", "ingest-again")),
                    workdir=tmp_path)
    assert doc["pipeline"] == "ingest" and doc["ok"] is True
    [variant] = doc["variants"]
    assert variant["counts"]["stored"] == variant["counts"]["sent"] == 40


def test_bench_padding_reaches_the_requested_wire_size(tmp_path: Path) -> None:
    doc = run_bench(_tiny(messages=10, latency_rate=0.0, payload_bytes=2_000), workdir=tmp_path)
    assert 1_990 <= doc["params"]["wire_bytes_mean"] <= 2_010
    assert doc["counts"]["lost"] == 0


def test_bench_refuses_unknown_pipelines_and_empty_runs() -> None:
    with pytest.raises(BenchError, match="unknown pipeline"):
        run_bench(_tiny(pipelines=("nope",)))
    with pytest.raises(BenchError, match=">= 1"):
        run_bench(_tiny(agents=0))


def test_percentiles_ms_nearest_rank() -> None:
    assert percentiles_ms([i / 1000 for i in range(1, 101)]) == {
        "p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0, "samples": 100}
    assert percentiles_ms([])["samples"] == 0
