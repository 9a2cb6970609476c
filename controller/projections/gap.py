"""A device's signed ``gap`` notice (a seq it can never deliver) becomes a declared-lost
range of that one seq, declared by the device itself."""

from __future__ import annotations

from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    return [{"device_id": fact.device_id, "first_seq": fact.seq, "last_seq": fact.seq,
             "reason": fact.body["reason"], "declared_by": fact.device_id,
             "declared_ms": fact.received_ms}]


PROJECTION = Projection(kind="gap", table="lost_ranges", rows=rows)
