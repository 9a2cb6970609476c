"""An emulated truck's tracker, end to end: `portwatch emulate gps` (a real process serving
NMEA on TCP) -> the tracker agent under ``micropython -X heapsize=96K`` -> Mosquitto (TLS)
-> the controller and its SQLite file. The receiver's UART is the one part that cannot run
here; the emulator's TCP stream stands in for it, ``$PPWIO`` for the GPIO inputs.

The test rebuilds the same trip in-process (same seed, script and start time) as the
oracle: every fix the controller stores is one of the emulator's, exactly; none falls in the
minutes the tracker was switched off; the power cut and the opened case arrive as alarms.
"""

from __future__ import annotations

import itertools
import json
import queue
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from controller.site import current_site
from controller.site.geometry import in_corridor
from controller.storage.positions import fixes_between
from tools.firmware import REPO
from tools.gps_emulator import Script, TruckPlan, Window, trajectory
from tools.procs import stop_process, wait_until
from tools.rig import Rig

MINUTES = 8.0
# 8 min of fix time in 48 s: 30 sentences a second for the agent. At 20x (60 a second) the
# agent under a 96 KiB heap met a MemoryError in nmea.parse once in six runs and its driver
# restarted, losing the lines sent meanwhile: a stress for the firmware, not this test's aim
SPEED = 10.0


def _stored(rig: Rig, device_id: str) -> list[list[int]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, sats, "
                            "hdop_x10 FROM positions WHERE device_id=? ORDER BY seq, idx",
                            (device_id,)).fetchall()
    return [list(r) for r in rows]


def _bodies(rig: Rig, device_id: str, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(rig.db_path) as conn:
        rows = conn.execute("SELECT payload FROM messages WHERE device_id=? AND kind=? "
                            "ORDER BY seq", (device_id, kind)).fetchall()
    return [json.loads(p.split(b"\n")[0])["body"] for p, in rows]


@pytest.mark.timeout(300)
def test_emulated_trip_through_the_tracker_agent_is_stored_exactly(rig: Rig) -> None:
    start_ms = (int(time.time()) // 60 - 60) * 60_000  # an hour ago, a whole minute
    plan = TruckPlan("c-feed-mill", start_ms, seed=11, script=Script(
        switched_off=(Window(5, 1.5),), power_cuts=(Window(3, 1),), tamper_at_min=2))
    trip = [f for f in trajectory(current_site(), plan)
            if f.ts_ms < start_ms + MINUTES * 60_000]
    by_ts = {f.ts_ms: f for f in trip}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "emulate", "gps", "--corridor", "c-feed-mill",
         "--seed", "11", "--start-ms", str(start_ms), "--speed", str(SPEED), "--minutes",
         str(MINUTES), "--wait-client-s", "60", "--off-at-min", "5", "--off-min", "1.5",
         "--power-cut-at-min", "3", "--power-cut-min", "1", "--tamper-at-min", "2"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout
    assert out is not None

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        ready = lines.get(timeout=30)
        assert f"fixes {len(trip)}" in ready, ready  # the process drives the same trip
        port = int(ready.split("tcp 127.0.0.1:")[1].split()[0])
        rig.add_tracker("trk-emu", source=f"tcp:127.0.0.1:{port}")
        rig.start_agent("trk-emu")
        done = lines.get(timeout=MINUTES * 60 / SPEED + 90)
        assert done.startswith("gps truck 1 done:"), done
        # the last batch is stored when the parked interval or the batch size is reached;
        # wait for every fix up to the last minute of the trip
        last_needed = start_ms + (MINUTES - 1.5) * 60_000
        wait_until(lambda: any(r[0] >= last_needed for r in _stored(rig, "trk-emu")), 60,
                   what="fixes up to the trip's last minute stored")
        wait_until(lambda: len(_bodies(rig, "trk-emu", "alarm")) >= 3, 30,
                   what="power and case alarms")
    finally:
        stop_process(proc)

    stored = _stored(rig, "trk-emu")
    assert len(stored) >= 50  # a fix every 5 s while moving, one a minute on the deck
    # each one is an emulator fix, exactly, in time order, once
    assert all(r == by_ts[r[0]].row() for r in stored)
    assert [r[0] for r in stored] == sorted({r[0] for r in stored})
    off = range(start_ms + 5 * 60_000, start_ms + 6 * 60_000 + 30_000)
    assert not any(r[0] in off for r in stored)
    assert any(r[0] >= off.stop for r in stored)  # it came back on and reported again
    # while moving, the agent keeps a fix every 5 s: no longer silence outside the off time
    moving = [r for r in stored if r[0] not in off]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(moving)
            if not (a[0] < off.start and b[0] >= off.stop)]
    assert max(gaps) <= 60_000
    corridor = current_site().corridors["c-feed-mill"]
    assert all(in_corridor(corridor, r[1], r[2], margin_m=by_ts[r[0]].noise_m + 0.5)
               for r in stored)
    alarms = [(b["alarm"], b["state"]) for b in _bodies(rig, "trk-emu", "alarm")]
    assert alarms[:3] == [("case_tamper", "raised"), ("ext_power_lost", "raised"),
                          ("ext_power_lost", "cleared")]
    positions = _bodies(rig, "trk-emu", "positions")
    assert any(b["tamper"] for b in positions) and positions[0]["tamper"] is False
    with sqlite3.connect(rig.db_path) as conn:
        assert fixes_between(conn, "trk-emu", stored[0][0], stored[-1][0]) == [
            (r[0], r[1], r[2]) for r in stored]
