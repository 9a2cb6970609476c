"""A device alarm event (raised or cleared) becomes one row of ``alarms``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    return [{"device_id": fact.device_id, "seq": fact.seq, "alarm": b["alarm"],
             "state": b["state"], "detail_json": json.dumps(b.get("detail", {}),
                                                            ensure_ascii=False),
             "device_ts": fact.device_ts, "received_ms": fact.received_ms}]


PROJECTION = Projection(kind="alarm", table="alarms", rows=rows)
