"""What a rule may conclude about the facts it saw. Pure values, no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.supervision.trip_events import TripEvent

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True, slots=True)
class Alert:
    """Raise (``active=True``) or clear an alert.

    An alert is identified by (rule, device_id, code, subject): raising one that is
    active, or clearing one that is not, changes nothing. ``subject`` tells apart alerts
    of one code on one device that live side by side (one per vehicle, say).
    """

    code: str
    device_id: str
    active: bool
    severity: str = "warning"
    subject: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} is not one of {SEVERITIES}")


HOLD_KINDS = ("manual", "quarantine", "recall", "blend_input")


@dataclass(frozen=True, slots=True)
class Hold:
    """Put ``lot`` on hold (``kind`` as controller.holds: a quarantine finding, say).

    The runner applies it through ``controller.holds.place_hold`` in the batch's
    transaction, so the lot is held at once; an active hold of that kind already there
    changes nothing. Releasing is never a rule's: officers release holds.
    """

    lot: str
    kind: str
    reason: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in HOLD_KINDS:
            raise ValueError(f"hold kind {self.kind!r} is not one of {HOLD_KINDS}")
        if not self.lot or not self.reason:
            raise ValueError("a hold names its lot and a reason")


# trip rules also record events in a trip's history; a rule may hold a lot (Hold)
Finding = Alert | TripEvent | Hold
