"""A device's signed ``refused`` notice becomes one row of ``refused_notices``.

An agent that could not make custody evidence durable (its outbox full, a flash write
error) refuses it — the gate stays closed for that vehicle — and counts the refusals in a
persisted counter; when it can, it sends this notice. The events it counts never had a
seq, so they are not a seq gap: they are reported here, by count, kind and time span.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    return [{"device_id": fact.device_id, "seq": fact.seq, "count": b["count"],
             "kinds_json": json.dumps(b.get("kinds", {}), ensure_ascii=False, sort_keys=True),
             "since_ts": b["since_ts"], "until_ts": b["until_ts"], "reason": b["reason"],
             "device_ts": fact.device_ts, "received_ms": fact.received_ms}]


PROJECTION = Projection(kind="refused", table="refused_notices", rows=rows)
