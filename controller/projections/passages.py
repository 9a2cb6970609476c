"""A rail reader's ``passage`` event becomes rows of ``passage_cars``, one per tag read.

Keyed by (device_id, seq, idx), idx the read's place in the passage (locomotives first,
then the cars in order); a passage without any tag makes one row of role ``none`` so that
every passage is in the ``passages`` view. Each row carries its passage's figures, so the
audit rebuilds the table like any other projection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.facts import Fact
from controller.projections import Projection, Row
from protocols.passage import car_dict


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    base: dict[str, Any] = {
        "device_id": fact.device_id, "seq": fact.seq, "train": b.get("train"),
        "direction": b["direction"], "started_ts": b["started_ts"], "ended_ts": b["ended_ts"],
        "speed_dkmh": b["speed_dkmh"], "axles_counted": b["axles"],
        "received_ms": fact.received_ms}
    empty = {"car_seq": None, "initial": None, "number": None, "side": None,
             "length_dm": None, "axles": None, "weight_kg": None, "raw_hex": None}
    out: list[Row] = []
    for loco in b.get("locos", []):
        out.append({**base, **empty, "idx": len(out), "role": "loco", "car_seq": loco[0],
                    "initial": loco[1], "number": loco[2]})
    for car in b["cars"]:
        d = car_dict(list(car))
        out.append({**base, "idx": len(out), "role": "car", "car_seq": d["seq"],
                    "initial": d["initial"], "number": d["number"], "side": d["side"],
                    "length_dm": d["length_dm"], "axles": d["axles"],
                    "weight_kg": d["weight_kg"], "raw_hex": d["raw_hex"]})
    if not out:
        out.append({**base, **empty, "idx": 0, "role": "none"})
    return out


PROJECTION = Projection(kind="passage", table="passage_cars", rows=rows)
