"""Trace: backward from a trip, rail car, weighing or lab sample to its lot; forward from a
lot; a lot's EPCIS 2.0 history (controller/trace.py, controller/epcis.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from controller import auth, epcis, trace
from controller.api.dependencies import Db, require
from controller.api.errors import responses
from controller.holds import LOT_PATTERN
from controller.storage import now_ms

router = APIRouter(prefix="/api/v1", tags=["trace"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 403, 404, 422, 503))
REF = r"^[A-Za-z0-9_.-]{1,64}:[0-9]{1,19}$"
Proofs = Annotated[bool, Query(description="false: each entry's index, hash and kind without "
                                           "its inclusion proof (a lighter answer)")]
LotPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                              description="the lot id (one with a / is not addressable here)",
                              examples=["LOT-2026-0042"])]


@router.get("/trace/backward", summary="Trace back to the lot, vessel and declaration")
def trace_backward(
    db: Db,
    trip: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                      description="a trip id")] = None,
    car: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_./-]{1,64}$",
                                     description="a rail car id")] = None,
    weighing: Annotated[str | None, Query(pattern=REF, description="DEVICE:SEQ")] = None,
    sample: Annotated[str | None, Query(pattern=REF, description="DEVICE:SEQ")] = None,
    proofs: Proofs = True,
) -> dict[str, Any]:
    """Exactly one start. Each node carries the ledger entries proving it (leaf index, leaf
    hash, RFC 9162 inclusion proof against the latest signed checkpoint)."""
    return trace.backward(db.conn, trip=trip, car=car, weighing=weighing, sample=sample,
                          paths=proofs)


@router.get("/trace/forward", summary="Trace a lot forward to every trip, car and blend")
def trace_forward(db: Db, lot: Annotated[str, Query(pattern=LOT_PATTERN,
                                                    description="the lot id")],
                  proofs: Proofs = True) -> dict[str, Any]:
    """Every trip and rail car that carried the lot (destination, kg, time) and every
    blend it went into, each with its ledger proofs."""
    return trace.forward(db.conn, lot, paths=proofs)


@router.get("/lots/{lot}/epcis", summary="A lot's history as an EPCIS 2.0 document")
def lot_epcis(db: Db, lot: LotPath) -> dict[str, Any]:
    """EPCIS 2.0 JSON-LD; each eventID is the CBV 2.0 event hash; ``pw:ledgerRefs`` maps
    each eventID to the ledger entries behind it."""
    return epcis.document(db.conn, lot, now_ms=now_ms())
