"""Projections: each table the API serves is made from accepted events by one function.

A projection turns one fact of one event kind into rows of one table. They are registered
once, here, in ``PROJECTIONS``; the ingest applies them to every accepted event (and the
audit that rebuilds the tables from the ledger applies the same ones). A new device kind
adds a module and a line below, not a branch in the writer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.facts import Fact

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Projection:
    """Rows of ``table`` made from events of ``kind``."""

    kind: str
    table: str
    rows: Callable[[Fact], Sequence[Row]]


def _registry() -> dict[str, Projection]:
    from controller.projections import alarm, gap, positions, refused, samples, weighing

    out: dict[str, Projection] = {}
    for module in (weighing, alarm, gap, refused, positions, samples):
        p: Projection = module.PROJECTION
        if p.kind in out:
            raise RuntimeError(f"two projections for event kind {p.kind!r}")
        out[p.kind] = p
    from controller.projections import passages  # the rail yard's readers

    out[passages.PROJECTION.kind] = passages.PROJECTION
    return out


PROJECTIONS: Mapping[str, Projection] = _registry()


def project(fact: Fact) -> list[tuple[str, Row]]:
    """The (table, row) pairs one fact makes (none for a kind without a projection)."""
    p = PROJECTIONS.get(fact.kind)
    return [] if p is None else [(p.table, row) for row in p.rows(fact)]
