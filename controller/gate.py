"""The out-gate decision: may the truck just weighed out leave? Pure: no I/O.

``decide(weighing, order, hold, scale)`` looks at one weighing at an out-gate weighbridge
(a device whose site spec has role ``out``), the open transfer order of its plate (or
None), the active hold on that order's lot (or None) and the scale, and returns
``Decision(action, reasons)``: ``open`` with no reasons, or ``deny`` with every reason
found (an officer at the gate sees them all at once, not one per attempt).

Checks, each a reason code and a sentence for the display and the ledger:

- ``no_open_order``: the plate has no open transfer order whose window holds the
  weighing (the caller looks it up with ``open_order_for_plate``);
- ``outside_window``: the order's window does not hold the weighing's time;
- ``lot_on_hold``: the order's lot has an active hold;
- ``net_out_of_tolerance``: the net mass differs from the order's expected net mass by
  more than the in-service maximum permissible error of a class III scale with the
  weighing's division e at the expected load (OIML R76, controller/weighing_tolerance.py);
- ``net_not_checkable``: that error cannot be computed (a division of 0, a load beyond
  10000 e): the gate cannot vouch for the mass, so it does not open;
- ``scale_out_of_calibration``: the scale has calibration certificates and none covers
  the weighing's device time (controller/calibration.py): its figure is kept and flagged,
  but cannot by itself let cargo go.

Time is the controller's receipt clock (``time_ms``), not the device's: an order's
window is the port's business time, and a device clock that is off must not move it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.weighing_tolerance import ToleranceError, mpe_kg

OPEN, DENY = "open", "deny"


@dataclass(frozen=True, slots=True)
class Scale:
    """What the tolerance depends on: the scale's division e and whether it is in service."""

    e_kg: int
    in_service: bool = True
    out_of_calibration: bool = False  # certificates on file, none valid at the weighing


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # OPEN or DENY
    reasons: tuple[Reason, ...] = ()

    def body(self) -> dict[str, Any]:
        """The JSON of this decision for the ledger and the store."""
        return {"action": self.action,
                "reasons": [{"code": r.code, "text": r.text} for r in self.reasons]}

    def summary(self, limit: int = 200) -> str:
        """The reasons in one line (the command's ``reason``), at most ``limit`` characters."""
        text = "; ".join(r.text for r in self.reasons) or "cleared"
        return text if len(text) <= limit else text[:limit - 1] + "…"


def decide(weighing: Mapping[str, Any], order: Mapping[str, Any] | None,
           hold: Mapping[str, Any] | None, scale: Scale) -> Decision:
    """The gate's answer for one weighing (see the module docstring).

    ``weighing``: ``plate``, ``net_kg``, ``time_ms``; ``order``: ``order_id``, ``lot``,
    ``window_start_ms``, ``window_end_ms``, ``expected_net_kg``; ``hold``: ``reason``.
    """
    reasons: list[Reason] = []
    if order is None:
        reasons.append(Reason("no_open_order", f"plate {weighing['plate']!r} has no open "
                              "transfer order for now"))
        return Decision(DENY, tuple(reasons))
    at = int(weighing["time_ms"])
    if not int(order["window_start_ms"]) <= at <= int(order["window_end_ms"]):
        reasons.append(Reason("outside_window", f"order {order['order_id']} window "
                              f"{order['window_start_ms']}-{order['window_end_ms']} ms "
                              f"does not hold {at} ms"))
    if hold is not None:
        reasons.append(Reason("lot_on_hold", f"lot {order['lot']} is on hold: "
                              f"{hold.get('reason', '')}"))
    net, expected = int(weighing["net_kg"]), int(order["expected_net_kg"])
    try:
        mpe = mpe_kg(expected, scale.e_kg, scale.in_service)
    except ToleranceError as exc:
        reasons.append(Reason("net_not_checkable", f"net {net} kg not checkable: {exc}"))
    else:
        if abs(net - expected) > mpe:
            reasons.append(Reason("net_out_of_tolerance", f"net {net} kg, expected "
                                  f"{expected} kg: off by {net - expected:+d} kg, more than "
                                  f"the {mpe} kg allowed (class III, e {scale.e_kg} kg)"))
    if scale.out_of_calibration:
        reasons.append(Reason("scale_out_of_calibration", "the scale's calibration "
                              "certificate does not cover this weighing: weigh on a "
                              "calibrated scale or renew the certificate"))
    return Decision(DENY if reasons else OPEN, tuple(reasons))
