"""Devices: list, one, health history; provisioning, key rotation, device keys,
decommissioning, lost seqs (admin)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status

from controller import auth, completeness, device_status, registry
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import (
    ID_PATTERN,
    Decommission,
    Device,
    DeviceCreate,
    DeviceKeyRegistered,
    DeviceKeyRegistration,
    DeviceProvisioned,
    HealthSample,
    KeyRotated,
    KeyRotation,
    LostDeclaration,
)
from controller.storage import Store, now_ms, views
from controller.storage import devices as device_rows

router = APIRouter(prefix="/api/v1/devices", tags=["devices"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the device's id")]
Admin = [Depends(require(auth.ADMINS))]


def to_device(row: dict[str, Any], store: Store | None = None) -> Device:
    """The API view of a registry row; with ``store``, its missing and lost seq ranges."""
    extra = completeness.of_device(store, row["device_id"], row["committed_seq"]) if store else {}
    return Device(**device_status.summary(row, now_ms()), **extra)


@router.get("", response_model=list[Device], summary="List devices with status and health")
def list_devices(db: Db) -> list[Device]:
    return [to_device(r, db) for r in device_rows.all_rows(db)]


@router.get("/{device_id}", response_model=Device, summary="One device",
            responses=responses(404))
def get_device(device_id: DeviceId, db: Db) -> Device:
    return to_device(registry.get(db, device_id), db)


@router.get("/{device_id}/health", response_model=list[HealthSample],
            summary="Health history, newest first", responses=responses(404))
def device_health(device_id: DeviceId, db: Db,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[HealthSample]:
    registry.get(db, device_id)
    return [HealthSample(boot=r["boot"], seq=r["seq"], device_ts=r["device_ts"],
                         received_ms=r["received_ms"], body=json.loads(r["body_json"]))
            for r in views.health(db, device_id, limit=limit)]


@router.post("", response_model=DeviceProvisioned, status_code=status.HTTP_201_CREATED,
             summary="Provision a device (admin); the answer holds its secrets, once",
             dependencies=Admin, responses=responses(403, 409, 413))
def provision_device(body: DeviceCreate, db: Db, request: Request,
                     who: Actor) -> DeviceProvisioned:
    row = registry.provision(db, device_id=body.device_id, site=request.app.state.site,
                             kind=body.kind, driver=body.driver, description=body.description,
                             actor=who)
    config = registry.device_config(row, mqtt_password=row["mqtt_password"],
                                    broker_host=body.broker_host, broker_port=body.broker_port,
                                    data_dir=f"var/{body.device_id}")
    return DeviceProvisioned(device=to_device(row), config=config)


@router.post("/{device_id}/lost", response_model=Device,
             summary="Declare seqs lost for good (admin): completeness stops waiting for them",
             dependencies=Admin, responses=responses(403, 404, 409, 413))
def declare_device_lost(device_id: DeviceId, body: LostDeclaration, db: Db, who: Actor) -> Device:
    completeness.declare_lost(db, device_id, body.first_seq, body.last_seq, reason=body.reason,
                              actor=who)
    return get_device(device_id, db)


@router.post("/{device_id}/rotate-key", response_model=KeyRotated,
             summary="Give a device a new HMAC key (admin); older keys expire after grace_s",
             dependencies=Admin, responses=responses(403, 404, 409, 413))
def rotate_device_key(device_id: DeviceId, body: KeyRotation, db: Db, who: Actor) -> KeyRotated:
    return KeyRotated(**registry.rotate_key(db, device_id, grace_s=body.grace_s, actor=who))


@router.post("/{device_id}/device-key", response_model=DeviceKeyRegistered,
             summary="Register or replace the device's own public key (admin), a ledger "
             "decision; its custody events must then be signed by that key",
             dependencies=Admin, responses=responses(403, 404, 409, 413))
def set_device_key(device_id: DeviceId, body: DeviceKeyRegistration, db: Db,
                   who: Actor) -> DeviceKeyRegistered:
    return DeviceKeyRegistered(**registry.set_device_key(db, device_id, body.pub, actor=who))


@router.post("/{device_id}/decommission", response_model=Device,
             summary="Take a device out of service (admin): keys end now, broker login goes "
             "with the next `portwatch broker config`, history stays",
             dependencies=Admin, responses=responses(403, 404, 409, 413))
def decommission_device(device_id: DeviceId, body: Decommission, db: Db, who: Actor) -> Device:
    return to_device(registry.decommission(db, device_id, reason=body.reason, actor=who), db)
