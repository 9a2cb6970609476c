"""A lab analyzer's ``sample`` event becomes one row of ``samples``.

Keyed by (device_id, seq) like every projection. The lot the sample belongs to is not in
the event: the controller decides it (controller/samples.py, a ``sample_lot`` decision
into ``sample_lots``), so this row is the analyzer's word only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from controller.facts import Fact
from controller.projections import Projection, Row


def rows(fact: Fact) -> Sequence[Row]:
    b = fact.body
    return [{"device_id": fact.device_id, "seq": fact.seq, "sample_id": b["sample_id"],
             "sampled_ts": b["sampled_ts"], "moisture_pm": b["moisture_pm"],
             "basis": b["basis"], "protein_pm": b["protein_pm"],
             "impurity_pm": b["impurity_pm"], "test_weight_g_per_l": b["test_weight_g_per_l"],
             "calibration_id": b["calibration_id"], "outlier": int(bool(b["outlier"])),
             "findings_json": json.dumps(b["findings"], ensure_ascii=False),
             "device_ts": fact.device_ts, "received_ms": fact.received_ms}]


PROJECTION = Projection(kind="sample", table="samples", rows=rows)
