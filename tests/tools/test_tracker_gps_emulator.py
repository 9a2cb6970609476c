"""The tracker driver (edge/drivers/tracker.py) reads the GPS emulator's stream
(tools/gps_emulator.py) of a truck on the demo site's corridors: two parts built apart,
checked against each other (CPython: the emulator is a tool, the driver the firmware's).

The emulator knows every fix it encoded; the driver must store exactly those of them that
its thinning keeps, batched, with the inputs' alarms in order.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from controller.site import current_site
from edge.drivers.tracker import TrackerDriver
from protocols import bodies
from tools.gps_emulator import Fix, Script, TruckPlan, Window, nmea_lines, trajectory

START_MS = 1_796_083_200_000  # 2026-12-01T00:00:00Z


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, body: dict[str, Any]) -> int:
        assert bodies.check("evt", kind, body) is None
        self.events.append((kind, body))
        return len(self.events)


def _read(fixes: list[Fix]) -> tuple[TrackerDriver, Sink]:
    sink = Sink()
    # the firmware is MicroPython code, unannotated: checked by running it
    d = TrackerDriver({"type": "tracker", "source": "tcp:127.0.0.1:1"},  # type: ignore[no-untyped-call]
                      sink.emit, None)
    d.feed(("\r\n".join(nmea_lines(fixes)) + "\r\n").encode())  # type: ignore[no-untyped-call]
    d.close_epoch()  # type: ignore[no-untyped-call]  # the last epoch: none closes it
    d.flush()  # type: ignore[no-untyped-call]
    return d, sink


@pytest.mark.parametrize("corridor", sorted(current_site().corridors))
def test_tracker_reads_the_gps_emulator_trip_exactly_thinned_and_batched(corridor: str) -> None:
    script = Script(power_cuts=(Window(10, 2),), tamper_at_min=20)
    fixes = trajectory(current_site(), TruckPlan(corridor_id=corridor, start_ms=START_MS,
                                                 seed=3, script=script))
    by_ts = {f.ts_ms: f for f in fixes}
    d, sink = _read(fixes)
    positions = [b for k, b in sink.events if k == "positions"]
    kept = [fix for b in positions for fix in b["fixes"]]
    assert d.counts["fixes"] == len(fixes) and d.counts["nmea_ok"] >= 2 * len(fixes)
    assert all(by_ts[k[0]].row() == k for k in kept)  # every field, exactly as encoded
    assert len(kept) == d.counts["fixes_kept"] and len(kept) / len(positions) >= 8
    for a, b in itertools.pairwise(kept):
        fa, fb = by_ts[a[0]], by_ts[b[0]]
        every = 5000 if b[3] > 50 else 60000
        assert b[0] - a[0] >= every or fa.ign != fb.ign or any(
            by_ts[t].ign != fa.ign for t in range(a[0], b[0], 1000) if t in by_ts)
    for b in positions:  # a batch never spans an ignition change; its ign is its fixes'
        assert {by_ts[f[0]].ign for f in b["fixes"]} == {b["ign"]}
    alarms = [(b["alarm"], b["state"]) for k, b in sink.events if k == "alarm"]
    assert alarms == [("ext_power_lost", "raised"), ("ext_power_lost", "cleared"),
                      ("case_tamper", "raised")]
    assert positions[-1]["tamper"] is True and positions[-1]["ign"] is False
