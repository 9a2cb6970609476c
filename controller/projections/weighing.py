"""A weighing event becomes one row of ``weighings``."""

from __future__ import annotations

from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    return [{"device_id": fact.device_id, "seq": fact.seq, "plate": b["plate"],
             "gross_kg": b["gross_kg"], "tare_kg": b["tare_kg"], "net_kg": b["net_kg"],
             "division_kg": b["division_kg"], "stable_ms": b["stable_ms"],
             "arrived_ts": b["arrived_ts"], "device_ts": fact.device_ts,
             "received_ms": fact.received_ms}]


PROJECTION = Projection(kind="weighing", table="weighings", rows=rows)
