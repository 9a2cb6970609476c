"""A fact: one accepted custody event, as projections and supervision rules see it.

Pure data, no I/O. ``device_ts`` is the device's own clock (rules are timed by it);
``received_ms`` is the controller's receipt clock; ``limits`` what the device is held to
at receipt (controller/plausibility.py; None: the defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.plausibility import Limits


@dataclass(frozen=True, slots=True)
class Fact:
    """One accepted custody event (channel ``evt``) of one device."""

    device_id: str
    seq: int
    boot: int
    kind: str
    device_ts: int
    received_ms: int
    body: Mapping[str, Any]
    limits: Limits | None = None

    @classmethod
    def from_fields(cls, device_id: str, fields: Mapping[str, Any], received_ms: int,
                    limits: Limits | None = None) -> Fact:
        """From a verified envelope's fields (protocols/envelope.py)."""
        return cls(device_id=device_id, seq=int(fields["seq"]), boot=int(fields["boot"]),
                   kind=str(fields["kind"]), device_ts=int(fields["ts"]),
                   received_ms=received_ms, body=fields["body"], limits=limits)
