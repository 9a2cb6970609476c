"""A device's remote configuration: its settings as it applied them, and the ``config`` and
``restart`` commands (admin) that change them (controller/device_config.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, status
from pydantic import BaseModel, Field, StrictFloat, StrictInt

from controller import auth, device_config
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.api.models import ID_PATTERN
from controller.api.routers.commands import Command, to_command

router = APIRouter(prefix="/api/v1/devices", tags=["devices"],
                   dependencies=[Depends(require(auth.READERS))],
                   responses=responses(401, 422, 503))
DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="the device's id")]
Admin = [Depends(require(auth.ADMINS))]


class ConfigChange(BaseModel):
    set: dict[str, StrictInt | StrictFloat] = Field(
        description="setting name -> new value, e.g. {\"health_interval_s\": 5}; the names "
        "and ranges the device's driver type allows are in GET .../config `allowed`",
        min_length=1, max_length=8)


class Restart(BaseModel):
    reason: str = Field("", max_length=200, description="why, for the record")


class DeviceConfig(BaseModel):
    device_id: str
    driver: str = Field(description="the driver type the device was registered with")
    applied: dict[str, Any] = Field(description="settings the device answered `applied` "
                                    "with, the last value of each")
    restart_needed: bool = Field(description="an applied setting waits for a restart")
    allowed: dict[str, dict[str, Any]] = Field(description="name -> low, high, live, number")
    pending: list[dict[str, Any]] = Field(description="config and restart commands not yet "
                                          "answered")
    recent: list[dict[str, Any]] = Field(description="its last config and restart commands, "
                                         "newest first, with the device's answers")


@router.get("/{device_id}/config", response_model=DeviceConfig,
            summary="The device's remotely set configuration: applied, pending, allowed",
            responses=responses(404))
def get_device_config(device_id: DeviceId, db: Db) -> DeviceConfig:
    return DeviceConfig(**device_config.view(db, device_id))


@router.post("/{device_id}/config", response_model=Command,
             status_code=status.HTTP_202_ACCEPTED,
             summary="Change settings on the device (admin): a signed config command, "
             "answered applied or refused", dependencies=Admin,
             responses=responses(403, 404, 413))
def change_device_config(device_id: DeviceId, body: ConfigChange, db: Db,
                         who: Actor) -> Command:
    row = device_config.issue_config(db, device_id, body.set, actor=who)
    return to_command(row)


@router.post("/{device_id}/restart", response_model=Command,
             status_code=status.HTTP_202_ACCEPTED,
             summary="Restart the device (admin): a signed restart command, answered "
             "restarting", dependencies=Admin, responses=responses(403, 404, 413))
def restart_device(device_id: DeviceId, body: Restart, db: Db, who: Actor) -> Command:
    return to_command(device_config.issue_restart(db, device_id, reason=body.reason,
                                                  actor=who))
