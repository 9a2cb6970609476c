"""The ledger: signed checkpoints and RFC 9162 proofs for auditors (read the log, prove it)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status

from controller import auth
from controller.api.dependencies import Db, DeviceFilter, require
from controller.api.errors import responses
from controller.errors import InvalidInput, NotFound
from controller.ledger import checkpoint, proofs
from controller.storage import ledger_log as ledger_store

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"],
                   dependencies=[Depends(require(auth.AUDITORS))],
                   responses=responses(401, 403, 422, 503))

Size = Annotated[int, Query(ge=0, le=2**48)]


def _checkpoint_doc(db: Db, cp: checkpoint.StoredCheckpoint) -> dict[str, Any]:
    return {"size": cp.size, "root_b64": proofs._b64(cp.root), "created_ms": cp.created_ms,
            "note": checkpoint.cosigned_note(db.conn, cp)}


@router.get("/checkpoint", summary="The latest signed checkpoint (C2SP signed note), cosigned",
            responses=responses(404))
def latest_checkpoint(db: Db) -> dict[str, Any]:
    cp = checkpoint.latest(db.conn)
    if cp is None:
        raise NotFound("no checkpoint yet: POST one")
    return {**_checkpoint_doc(db, cp), "ledger_size": ledger_store.size(db.conn)}


@router.post("/checkpoints", status_code=status.HTTP_201_CREATED,
             summary="Sign a checkpoint of the whole ledger now", responses=responses(409, 413))
def create_checkpoint(db: Db, request: Request) -> dict[str, Any]:
    signer = checkpoint.log_signer(request.app.state.db_path,
                                   checkpoint.origin_for(request.app.state.site))
    cp = checkpoint.create(db.conn, signer, time.time_ns() // 1_000_000)
    return _checkpoint_doc(db, cp)


@router.get("/proofs/inclusion", summary="RFC 9162 inclusion proof of one entry",
            responses=responses(404, 409))
def inclusion_proof(db: Db, index: Size | None = None, device_id: DeviceFilter = None,
                    seq: Annotated[int | None, Query(ge=1, le=2**48)] = None,
                    tree_size: Size | None = None) -> dict[str, Any]:
    if index is None:
        if device_id is None or seq is None:
            raise InvalidInput("give index, or device_id and seq")
        index = ledger_store.find_message(db.conn, device_id, seq)
        if index is None:
            raise NotFound(f"no ledger entry for {device_id} seq {seq}")
    n = ledger_store.size(db.conn)
    if index >= n or (tree_size is not None and not index < tree_size <= n):
        raise NotFound(f"the ledger holds {n} entries")
    return proofs.inclusion(db.conn, index, tree_size)


@router.get("/proofs/consistency", summary="RFC 9162 consistency proof between two sizes",
            responses=responses(404, 409))
def consistency_proof(db: Db, old: Annotated[int, Query(ge=1, le=2**48)],
                      new: Size | None = None) -> dict[str, Any]:
    n = ledger_store.size(db.conn)
    if old > n or (new is not None and not old <= new <= n):
        raise NotFound(f"the ledger holds {n} entries")
    return proofs.consistency(db.conn, old, new)
