"""A trip rule's second kind of finding: an event in a trip's history.

The runner hands each one to ``controller.trips.record_event``, which appends a ``trip``
decision to the ledger (and a ``trip_events`` row); ``arrived`` also closes the trip and
its order. Pure values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class TripEvent:
    """``event`` happened on trip ``trip_id`` at device time ``ts``."""

    trip_id: str
    event: str
    ts: int
    detail: Mapping[str, Any] = field(default_factory=dict)
