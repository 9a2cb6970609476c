"""A weighing event becomes one row of ``weighings``, with its plausibility flags."""

from __future__ import annotations

import json
from collections.abc import Sequence

from controller.facts import Fact
from controller.plausibility import weighing_flags
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    # stored, never dropped: a weighing a scale could not have shown is evidence too
    flags = list(weighing_flags(fact))
    return [{"device_id": fact.device_id, "seq": fact.seq, "plate": b["plate"],
             "gross_kg": b["gross_kg"], "tare_kg": b["tare_kg"], "net_kg": b["net_kg"],
             "division_kg": b["division_kg"], "stable_ms": b["stable_ms"],
             "arrived_ts": b["arrived_ts"], "device_ts": fact.device_ts,
             "received_ms": fact.received_ms, "flags_json": json.dumps(flags)}]


PROJECTION = Projection(kind="weighing", table="weighings", rows=rows)
