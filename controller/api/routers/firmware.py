"""Over-the-air firmware: the devices' downloads (``/fw/``) and the admins' view and start of
rollouts (``/api/v1/firmware``); controller/firmware_rollout.py does the work.

Downloads are outside ``/api/``: a device has no API token. It sends the download token
its signed ``update`` command carried (``?t=``), which opens exactly one bundle for that
device while its rollout runs; anything else is 404, whatever it was. ``Range: bytes=a-b``
is honoured (206), so a device fetches a file in pieces its heap can take.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, Field

from controller import auth, firmware_rollout
from controller.api.dependencies import Actor, Db, require
from controller.api.errors import responses
from controller.errors import InvalidInput, NotFound
from controller.storage import firmware as rows
from controller.storage import now_ms, transaction

# not in the API schema: for devices only, with their own token (not an API one)
downloads = APIRouter(prefix="/fw", tags=["firmware"], include_in_schema=False)
router = APIRouter(prefix="/api/v1/firmware", tags=["firmware"],
                   dependencies=[Depends(require(auth.ADMINS))],
                   responses=responses(401, 403, 422, 503))
Token = Annotated[str, Query(alias="t", min_length=16, max_length=64,
                             description="the download token of the device's update command")]
RangeHeader = Annotated[str | None, Header(alias="range")]


def _serve(data: bytes, rng: str | None, media: str) -> Response:
    if not rng:
        return Response(data, media_type=media)
    unit, _, spec = rng.partition("=")
    first_s, _, last_s = spec.partition("-")
    try:
        first = int(first_s)
        last = min(int(last_s) if last_s else len(data) - 1, len(data) - 1)
    except ValueError:
        first, last = -1, -1
    if unit.strip() != "bytes" or not 0 <= first <= last:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return Response(data[first:last + 1], status_code=206, media_type=media,
                    headers={"Content-Range": f"bytes {first}-{last}/{len(data)}"})


def _bundle(db: Db, t: str, kind: str, version: str) -> FsPath:
    with transaction(db.conn):
        b = firmware_rollout.download(db.conn, t, kind, version, now_ms())
    return FsPath(b["path"])


@downloads.get("/{kind}/{version}/manifest.json", summary="A bundle's manifest (device)")
def manifest(db: Db, kind: str, version: str, t: Token, rng: RangeHeader = None) -> Response:
    return _serve((_bundle(db, t, kind, version) / "manifest.json").read_bytes(), rng,
                  "application/json")


@downloads.get("/{kind}/{version}/manifest.sig", summary="Its signature (device)")
def signature(db: Db, kind: str, version: str, t: Token, rng: RangeHeader = None) -> Response:
    return _serve((_bundle(db, t, kind, version) / "manifest.sig").read_bytes(), rng,
                  "text/plain")


@downloads.get("/{kind}/{version}/files/{path:path}", summary="One file of a bundle (device)")
def file(db: Db, kind: str, version: str, path: str, t: Token,
         rng: RangeHeader = None) -> Response:
    root = _bundle(db, t, kind, version)
    import json

    listed = {f["path"] for f in json.loads((root / "manifest.json").read_bytes())["files"]}
    if path not in listed:  # only what the manifest lists: no path leaves the bundle
        raise NotFound("no such firmware for this download token")
    return _serve((root / path).read_bytes(), rng, "application/octet-stream")


class RolloutIn(BaseModel):
    kind: str = Field(min_length=1, max_length=40)
    version: str = Field(min_length=1, max_length=32)
    url: str = Field(min_length=8, max_length=150,
                     description="the controller's http:// address as devices reach it")
    devices: list[str] | None = Field(default=None, max_length=1000,
                                      description="stage 1; the rest after they are healthy")
    percent: int | None = Field(default=None, ge=1, le=100)
    healthy_s: int = Field(default=600, ge=1, le=86_400)
    trial_s: int = Field(default=300, ge=5, le=86_400)


@router.get("/bundles", summary="Published firmware bundles")
def list_bundles(db: Db) -> list[dict[str, Any]]:
    return rows.bundles(db.conn)


@router.get("/rollouts", summary="Rollouts, newest first")
def list_rollouts(db: Db) -> list[dict[str, Any]]:
    return rows.rollouts(db.conn)


@router.get("/rollouts/{rollout_id}", summary="One rollout with each device's state",
            responses=responses(404))
def get_rollout(db: Db, rollout_id: int) -> dict[str, Any]:
    return firmware_rollout.view(db.conn, rollout_id)


@router.post("/rollouts", status_code=201, summary="Start a rollout of a published bundle",
             responses=responses(404, 413))
def post_rollout(db: Db, actor: Actor, body: RolloutIn) -> dict[str, Any]:
    if body.devices and body.percent:
        raise InvalidInput("give devices or percent, not both")
    with transaction(db.conn):
        return firmware_rollout.start(db.conn, kind=body.kind, version=body.version,
                                      url=body.url, devices=body.devices,
                                      percent=body.percent, healthy_s=body.healthy_s,
                                      trial_s=body.trial_s, actor=actor, now_ms=now_ms())
