"""A tracker's ``positions`` event becomes one row of ``positions`` per fix.

Keyed by (device_id, seq, idx), idx the fix's place in the batch: a resent batch has the
same seq and is deduplicated before projection, so each fix is stored once. The audit
rebuilds these rows like any other projection (several rows per seq, keyed with idx).
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    out: list[Row] = []
    for idx, fix in enumerate(fact.body["fixes"]):
        ts, lat, lon, speed, course, sats, hdop = fix
        out.append({"device_id": fact.device_id, "seq": fact.seq, "idx": idx, "ts_ms": ts,
                    "lat_e6": lat, "lon_e6": lon, "speed_dkmh": speed, "course_deg": course,
                    "sats": sats, "hdop_x10": hdop, "received_ms": fact.received_ms})
    return out


PROJECTION = Projection(kind="positions", table="positions", rows=rows)
