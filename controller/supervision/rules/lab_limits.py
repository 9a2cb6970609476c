"""A lab sample over its commodity's limit becomes an alert: moisture (spoilage in the
silo) or impurity (foreign matter). The limits are per mille, per commodity, with a
``default`` for commodities not named; configurable like every rule's settings.

The sample's lot and commodity come from the controller's ``sample_lot`` decision
(controller/samples.py adds them to the body before the rules run). An analyzer
``outlier`` (the result is outside its calibration model: not a measurement to judge)
raises ``lab_outlier`` instead; a sample taken while the analyzer's calibration did not
cover the time raises ``lab_uncalibrated`` (once per analyzer until an operator resolves
it) and is still judged: a limit seen by an uncertified instrument is worth a look. A
re-sent result (``duplicate``) is judged once. Each alert's subject is the sample id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controller.facts import Fact
from controller.supervision.findings import Alert, Finding

NAME = "lab_limits"
KINDS = ("sample",)
# per mille of the sample's mass; wet basis. Grain trade limits: soybeans 13 % moisture,
# 2 % foreign matter; wheat and corn 14 % moisture
DEFAULTS: Mapping[str, Any] = {"limits": {
    "default": {"moisture_pm": 140, "impurity_pm": 20},
    "soybeans": {"moisture_pm": 130, "impurity_pm": 20},
    "wheat": {"moisture_pm": 140, "impurity_pm": 20},
    "corn": {"moisture_pm": 140, "impurity_pm": 30},
}}
MEASURES = (("moisture_pm", "moisture_over_limit"), ("impurity_pm", "impurity_over_limit"))


def scope(fact: Fact) -> str:
    return fact.device_id


def limits_for(config: Mapping[str, Any], commodity: str | None) -> Mapping[str, int]:
    """The limits of ``commodity`` (its lower-case name), else the default's."""
    table: Mapping[str, Mapping[str, int]] = config["limits"]
    return table.get((commodity or "").lower(), table["default"])


def update(state: dict[str, Any], fact: Fact,
           config: Mapping[str, Any]) -> tuple[dict[str, Any], Sequence[Finding]]:
    b = fact.body
    if b.get("duplicate"):
        return state, []
    sid, lot = b["sample_id"], b.get("lot_id")
    base = {"sample_id": sid, "lot_id": lot, "sampled_ts": b["sampled_ts"]}
    out: list[Finding] = []
    if b.get("calibration_valid") is False:
        out.append(Alert("lab_uncalibrated", fact.device_id, True, "warning", "",
                         {**base, "calibration_id": b["calibration_id"],
                          "what_to_do": "record the analyzer's calibration certificate "
                                        "(portwatch calibration add) or recalibrate it"}))
    if b["outlier"]:
        out.append(Alert("lab_outlier", fact.device_id, True, "warning", sid,
                         {**base, "what_to_do": "the analyzer flagged the result as outside "
                                                "its model: take a reference sample"}))
        return state, out
    limits = limits_for(config, b.get("commodity"))
    for field, code in MEASURES:
        limit = limits.get(field)
        if limit is not None and b[field] > limit:
            out.append(Alert(code, fact.device_id, True, "warning", sid,
                             {**base, "commodity": b.get("commodity"), field: b[field],
                              "limit_pm": limit, "basis": b["basis"]}))
    return state, out
