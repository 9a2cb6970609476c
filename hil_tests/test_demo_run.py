"""`portwatch demo --run-for-s 60`, run as the README and CI run it: every process real
(Mosquitto, the controller, the weighbridge emulators and their agents and the tracker
agents under micropython, the JT/T 808 gateway and terminal, the GPS emulator's NMEA).

Within the minute trucks leave through wb-out on trips, at least one arrives, exactly one
``corridor_deviation`` is raised (the planned detour), and nothing else goes wrong: no
truck's trouble printed, no gate denial, no tracker missing at the weighbridge; every
barrier opened on the controller's command, and the feed mill's office has a record of
each trip to it; the store audits clean against its ledger. The vessel's lot
(tools/demo_vessel.py) has a clean sample stored every 5 s, each linked to it, and its
20-car train passed rail-1 matching its manifest: no lab or rail alert.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tools.firmware import REPO
from tools.procs import free_port

RUN_FOR_S = 60


@pytest.mark.timeout(400)
def test_demo_run_for_60_s_shows_trips_arriving_and_one_deviation(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "demo", "--run-for-s", str(RUN_FOR_S),
         "--workdir", str(workdir), "--api-port", str(free_port())],
        cwd=REPO, capture_output=True, text=True, timeout=360)
    took = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"{out[-3000:]}\n{done.stderr[-3000:]}"
    assert took < RUN_FOR_S + 240  # start-up and shutdown stay bounded
    departed = re.findall(r"^\S+ trip (o-\w+) \S+ departed wb-out #\d+", out, re.M)
    arrived = re.findall(r"^\S+ trip (o-\w+) \S+ arrived at dest-", out, re.M)
    assert len(departed) >= 3 and arrived and set(arrived) <= set(departed), out[-3000:]
    assert len(re.findall(r"^\S+ alert #\d+ critical corridor_deviation", out, re.M)) == 1
    assert not re.search(r"^\S+ truck \S+:", out, re.M), out[-3000:]  # no truck failed
    with sqlite3.connect(workdir / "portwatch.db") as db:
        codes = [c for c, in db.execute("SELECT code FROM alerts")]
        trips = dict(db.execute("SELECT status, count(*) FROM trips GROUP BY status")
                     .fetchall())
        # every departure is the controller's barrier command, acked done by wb-out (the
        # last one may still be on its way when the demo stops)
        commands = [(json.loads(body)["action"], json.loads(ack or "{}").get("result"))
                    for body, ack in db.execute("SELECT body_json, ack_json FROM commands "
                                                "WHERE device_id = 'wb-out'")]
        # the feed mill's office has a signed record queued for each of its trips
        queued = {t for t, in db.execute("SELECT trip_id FROM office_outbox WHERE office_id = "
                                         "'demo-feed-mill'")}
        to_mill = {t for t, in db.execute("SELECT trip_id FROM trips WHERE destination = "
                                          "'dest-feed-mill'")}
        lots = [lot for lot, in db.execute("SELECT lot_id FROM sample_lots")]
        train = db.execute("SELECT status, passage_device, passage_seq FROM trains").fetchone()
    assert codes.count("corridor_deviation") == 1, codes
    assert not {"gate_denied", "tracker_not_at_weighbridge", "trip_overdue",
                "tracking_gap", "command_unacknowledged", "tracker_reused"} & set(codes), codes
    assert trips.get("arrived", 0) >= 1 and "cancelled" not in trips, trips
    assert [a for a, _ in commands] == ["open"] * sum(trips.values())
    assert [r for _, r in commands].count("done") >= len(commands) - 1
    assert {r for _, r in commands} <= {"done", None}
    assert to_mill and queued == to_mill
    # the vessel: clean samples of the unloading lot, printed as stored
    printed = re.findall(r"^\S+ sample (S-\S+) lab-1 lot LOT-2026-0101 .* findings 0$", out,
                         re.M)
    assert len(printed) >= RUN_FOR_S // 5 - 3, out[-3000:]  # one every 5 s from the start
    assert len(set(printed)) == len(printed)
    assert sorted(set(lots)) == ["LOT-2026-0101"] and len(lots) >= len(printed), lots
    assert not [c for c in codes if c.startswith("lab_")
                or c in ("sample_without_lot", "quarantine_finding")], codes
    # the train: its passage matched to the manifest, every car where it should be
    assert re.search(r"^\S+ train T-2026-1201-01 passed rail-1 \(passage #1\): passed$",
                     out, re.M), out[-3000:]
    assert train == ("passed", "rail-1", 1), train
    assert not [c for c in codes if c.startswith("rail_") or c == "events_refused"], codes
    audit = subprocess.run([sys.executable, "-m", "tools.cli", "ledger", "audit", "--db",
                            str(workdir / "portwatch.db")], cwd=REPO, capture_output=True,
                           text=True, timeout=120)
    assert audit.returncode == 0, audit.stdout[-2000:]  # every row is what the ledger makes
