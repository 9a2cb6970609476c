"""``portwatch bench-trackers`` on a small fleet: a real Mosquitto, the real ingest, the
emulated trackers' child processes; every figure it reports comes from the stores."""

from __future__ import annotations

from pathlib import Path

from tools.bench_tracker_mode import TrackerParams, run_trackers_bench


def test_bench_trackers_small_fleet_stores_every_fix_and_alerts_every_alarm(
        tmp_path: Path) -> None:
    p = TrackerParams(trackers=40, messages=3, paced_s=2.0, speed=200.0, alarm_every=8,
                      procs=2, clients=2, sys_wait_s=0.0, stall_s=20.0)
    doc = run_trackers_bench(p, workdir=tmp_path)
    assert doc["ok"] is True
    sat, paced, base = doc["saturating"], doc["paced"], doc["baseline"]
    assert sat["counts"]["stored"] == sat["counts"]["sent"] == 40 * 3
    assert base["counts"]["stored"] == 40 * 3 and base["latency_ms"] is None
    cost = doc["ledger_per_truck_day"]
    assert cost["position_rows"] == 40 * 3 * 10  # the positions projection: one row per fix
    assert cost["positions_messages"] == 40 * 3
    # a positions entry holds the message's exact bytes: never smaller than the wire
    assert cost["ledger_bytes_per_msg"] > cost["wire_bytes_per_msg"] > 0
    assert cost["ledger_bytes_per_truck_day"] == round(cost["ledger_bytes_per_msg"] * 864)
    alerts = doc["alert_latency_ms"]
    # each of the 2 processes has 20 trackers; its 0th, 8th and 16th raise an alarm
    assert alerts["alarms_sent"] == 6 and alerts["alerts_committed"] == 6
    assert alerts["samples"] == 6 and 0 < alerts["p50"] <= alerts["p99"]
    assert doc["positions_per_s"] == sat["positions_per_s"] > 0
    assert paced["counts"]["lost"] == 0
