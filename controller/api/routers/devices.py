"""Devices: list, one, health history, provisioning and key rotation (admin)."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import sqlite_utils
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from controller import auth, registry
from controller.api.dependencies import Actor, Db, require
from controller.api.models import (
    Device,
    DeviceCreate,
    DeviceProvisioned,
    HealthSample,
    KeyRotated,
    KeyRotation,
    LostDeclaration,
)
from controller.errors import DeviceExists, UnknownDevice
from controller.ingest.writer import declare_lost, missing_ranges

router = APIRouter(prefix="/api/v1/devices", tags=["devices"],
                   dependencies=[Depends(require(auth.READERS))])

STALE_AFTER_MS = 60_000
CLOCK_SUSPECT_MS = 60_000


def to_device(row: dict[str, Any], now_ms: int | None = None,
              db: sqlite_utils.Database | None = None) -> Device:
    """The API view of a registry row, with ``stale`` for a silent 'online' device.

    With ``db``, completeness too: the missing and the declared-lost seq ranges.
    """
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    state = row["status"]
    if state == "online" and row["last_seen_ms"] and now_ms - row["last_seen_ms"] > STALE_AFTER_MS:
        state = "stale"
    return Device(
        device_id=row["device_id"], site=row["site"], kind=row["kind"],
        description=row["description"] or "", status=state, last_seen_ms=row["last_seen_ms"],
        fw_version=row["fw_version"], boot=row["boot"], committed_seq=row["committed_seq"],
        health=json.loads(row["health_json"]) if row["health_json"] else None,
        health_ms=row["health_ms"], clock_offset_ms=row["clock_offset_ms"], key_id=row["key_id"],
        clock_suspect=abs(row["clock_offset_ms"] or 0) > CLOCK_SUSPECT_MS,
        missing=missing_ranges(db.conn, row["device_id"], row["committed_seq"]) if db else [],
        lost=[(r["first_seq"], r["last_seq"]) for r in db.query(
            "SELECT first_seq, last_seq FROM lost_ranges WHERE device_id=? ORDER BY first_seq",
            [row["device_id"]])] if db else [],
    )


@router.get("", response_model=list[Device], summary="List devices with status and health")
def list_devices(db: Db) -> list[Device]:
    return [to_device(r, db=db) for r in db["devices"].rows_where(order_by="device_id")]


@router.get("/{device_id}", response_model=Device, summary="One device")
def get_device(device_id: str, db: Db) -> Device:
    try:
        return to_device(registry.get(db, device_id), db=db)
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


@router.get("/{device_id}/health", response_model=list[HealthSample],
            summary="Health history, newest first")
def device_health(device_id: str, db: Db,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[HealthSample]:
    get_device(device_id, db)
    rows = db.query("SELECT * FROM health WHERE device_id=? ORDER BY id DESC LIMIT ?",
                    [device_id, limit])
    return [HealthSample(boot=r["boot"], seq=r["seq"], device_ts=r["device_ts"],
                         received_ms=r["received_ms"], body=json.loads(r["body_json"]))
            for r in rows]


@router.post("", response_model=DeviceProvisioned, status_code=status.HTTP_201_CREATED,
             summary="Provision a device (admin); the answer holds its secrets, once",
             dependencies=[Depends(require(auth.ADMINS))])
def provision_device(body: DeviceCreate, db: Db, request: Request,
                     who: Actor) -> DeviceProvisioned:
    try:
        row = registry.provision(db, device_id=body.device_id, site=request.app.state.site,
                                 kind=body.kind, driver=body.driver, description=body.description,
                                 actor=who)
    except DeviceExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    config = registry.device_config(row, mqtt_password=row["mqtt_password"],
                                    broker_host=body.broker_host, broker_port=body.broker_port,
                                    data_dir=f"var/{body.device_id}")
    return DeviceProvisioned(device=to_device(row), config=config)


@router.post("/{device_id}/lost", response_model=Device,
             summary="Declare seqs lost for good (admin): completeness stops waiting for them",
             dependencies=[Depends(require(auth.ADMINS))])
def declare_device_lost(device_id: str, body: LostDeclaration, db: Db,
                        who: Actor) -> Device:
    device = get_device(device_id, db)
    if body.last_seq < body.first_seq:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "last_seq < first_seq")
    if body.first_seq <= device.committed_seq:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"seqs up to {device.committed_seq} are already committed")
    declare_lost(db.conn, device_id, body.first_seq, body.last_seq, reason=body.reason,
                 actor=who, now_ms=time.time_ns() // 1_000_000)
    return get_device(device_id, db)


@router.post("/{device_id}/rotate-key", response_model=KeyRotated,
             summary="Give a device a new HMAC key (admin); older keys expire after grace_s",
             dependencies=[Depends(require(auth.ADMINS))])
def rotate_device_key(device_id: str, body: KeyRotation, db: Db, who: Actor) -> KeyRotated:
    try:
        rotation = registry.rotate_key(db, device_id, grace_s=body.grace_s, actor=who)
    except UnknownDevice as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return KeyRotated(**rotation)
