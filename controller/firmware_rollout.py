"""Over-the-air firmware: publish a bundle, roll it out in two stages, follow each device.

Functional core over the caller's connection (each write inside the caller's transaction),
plus ``run_rollouts``, the controller's task that calls ``tick`` every second.

- ``read_bundle(path)``: a built bundle's manifest, every file checked against it.
- ``publish``: registers (kind, version) -> the bundle's directory, and a ``firmware``
  ledger decision.
- ``start``: a rollout: stage 1 (``devices``, or the first ``percent`` of the devices whose
  driver is the bundle's kind, by id) gets signed ``update`` commands (controller/commands.py)
  now; stage 2 (every other device of that kind) once every stage-1 device is ``healthy``.
  Each device's command carries a fresh download token (its SHA-256 kept here): devices
  have no API token, and the token, known only to the controller and (through the
  HMAC-signed command on the device's own ACL'd topic) the device, lets exactly that device
  fetch exactly that bundle while its rollout runs.
- ``tick``: each device's state from what the controller sees: ``pending`` (command out),
  ``downloading`` (its token fetched a file), ``switched`` (its birth / health report the
  version), ``healthy`` (health still reporting it ``healthy_s`` after the switch),
  ``rolled_back`` (it answered that it rolled back, or reports another version after the
  switch), ``failed`` (it refused the bundle: signature, hash, kind; or the command
  expired). A stage-1 device rolled back or failed stops the rollout, with the critical
  alert ``firmware_rollout_stopped``. Every change is a ``firmware`` ledger decision.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from controller import commands
from controller.errors import ControllerError, InvalidInput, NotFound
from controller.storage import commands as command_rows
from controller.storage import firmware as rows
from controller.storage import ledger_log, now_ms, open_store, transaction
from controller.supervision.apply import apply_alert
from controller.supervision.findings import Alert

log = logging.getLogger("portwatch.firmware")
RULE = "firmware"
SIG_PREFIX = b"pw1-fw\n"
FINAL = ("healthy", "rolled_back", "failed")
COMMAND_TTL_MS = 30 * 60_000  # resent every 3 s until answered: a device offline for a while


def token_sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_bundle(path: Path) -> dict[str, Any]:
    """The manifest of the bundle directory ``path`` after checking its files (InvalidInput
    names the first problem and what to do)."""
    try:
        data = (path / "manifest.json").read_bytes()
        sig = (path / "manifest.sig").read_text().strip()
        m: dict[str, Any] = json.loads(data)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a firmware bundle ({exc}): build one with "
                           "`portwatch firmware build KIND`") from exc
    canonical = json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
    if m.get("format") != 1 or canonical != data or len(sig) != 128:
        raise InvalidInput(f"{path}/manifest.json is not a format-1 manifest with its "
                           "signature: build the bundle again")
    for f in m["files"]:
        p = path / f["path"]
        if not p.is_file() or p.stat().st_size != f["size"] or \
                hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            raise InvalidInput(f"{p} is missing or differs from the manifest: build the "
                               "bundle again")
    return m


def publish(conn: sqlite3.Connection, path: Path, *, actor: str, now_ms: int) -> dict[str, Any]:
    """Register the bundle at ``path``; its row."""
    m = read_bundle(path)
    row = {"kind": m["kind"], "version": m["version"], "path": str(path.resolve()),
           "manifest_sha256": hashlib.sha256((path / "manifest.json").read_bytes()).hexdigest(),
           "size": sum(f["size"] for f in m["files"]), "files": len(m["files"]),
           "published_ms": now_ms, "published_by": actor}
    rows.put_bundle(conn, row)
    ledger_log.append_decision(conn, "firmware", actor, {"published": row}, now_ms)
    return row


def _kind_devices(conn: sqlite3.Connection, kind: str) -> list[str]:
    out = []
    for device_id, driver in rows.in_service_drivers(conn):
        try:
            if json.loads(driver or "{}").get("type") == kind:
                out.append(str(device_id))
        except ValueError:
            continue
    return out


def start(conn: sqlite3.Connection, *, kind: str, version: str, url: str,
          devices: list[str] | None, percent: int | None, healthy_s: int, trial_s: int,
          actor: str, now_ms: int) -> dict[str, Any]:
    """Start a rollout of a published bundle; its view (``view``)."""
    b = rows.bundle(conn, kind, version)
    if b is None:
        raise NotFound(f"no bundle {kind} {version} is published: `portwatch firmware "
                       f"publish build/bundles/{kind}-{version}` first")
    if not url.startswith("http://"):
        raise InvalidInput("url must be the controller's http:// address as the devices "
                           "reach it, e.g. http://10.0.0.2:8080")
    every = _kind_devices(conn, kind)
    if devices:
        unknown = [d for d in devices if d not in every]
        if unknown:
            raise InvalidInput(f"not {kind} devices in service: {', '.join(unknown)}")
        first = list(dict.fromkeys(devices))
    else:
        n = math.ceil(len(every) * (percent or 100) / 100)
        first = every[:max(n, 1)] if every else []
    if not first:
        raise InvalidInput(f"no {kind} device in service to update")
    rid = rows.add_rollout(conn, {"kind": kind, "version": version,
                                  "url": f"{url.rstrip('/')}/fw/{kind}/{version}",
                                  "state": "running", "healthy_s": healthy_s,
                                  "trial_s": trial_s, "created_ms": now_ms,
                                  "created_by": actor, "updated_ms": now_ms, "detail": ""})
    for stage, ids in ((1, first), (2, [d for d in every if d not in first])):
        for d in ids:
            rows.add_device(conn, {"rollout_id": rid, "device_id": d, "stage": stage,
                                   "state": "queued", "updated_ms": now_ms})
    ledger_log.append_decision(conn, "firmware", actor, {
        "rollout": rid, "kind": kind, "version": version, "stage1": first,
        "stage2": [d for d in every if d not in first], "healthy_s": healthy_s}, now_ms)
    r = rows.rollout(conn, rid)
    assert r is not None
    for d in first:
        _issue(conn, r, d, b["size"], actor, now_ms)
    return view(conn, rid)


def _issue(conn: sqlite3.Connection, r: dict[str, Any], device_id: str, size: int,
           actor: str, now_ms: int) -> None:
    token = secrets.token_urlsafe(24)
    cmd = commands.issue(conn, device_id=device_id, kind="update", now_ms=now_ms,
                         device_offset_ms=rows.clock_offset_ms(conn, device_id),
                         ttl_ms=COMMAND_TTL_MS,
                         actor=actor, cause={"rollout": r["id"]},
                         body={"version": r["version"], "url": r["url"], "token": token,
                               "size": size, "trial_s": r["trial_s"]})
    rows.set_device(conn, r["id"], device_id, state="pending", command_id=cmd["id"],
                    token_sha256=token_sha(token), updated_ms=now_ms)


def _move(conn: sqlite3.Connection, d: dict[str, Any], state: str, detail: str,
          now_ms: int, **extra: Any) -> None:
    rows.set_device(conn, d["rollout_id"], d["device_id"], state=state, detail=detail,
                    updated_ms=now_ms, **extra)
    ledger_log.append_decision(conn, "firmware", "controller", {
        "rollout": d["rollout_id"], "device_id": d["device_id"], "from": d["state"],
        "to": state, "detail": detail}, now_ms)
    log.info("rollout %s: %s %s -> %s %s", d["rollout_id"], d["device_id"], d["state"],
             state, detail)


def _next_state(conn: sqlite3.Connection, r: dict[str, Any], d: dict[str, Any],
                now_ms: int) -> tuple[str, str] | None:
    fw, health_ms = rows.reported_firmware(conn, d["device_id"])
    cmd = command_rows.get(conn, d["command_id"]) if d["command_id"] else None
    ack = json.loads(cmd["ack_json"]) if cmd and cmd["ack_json"] else {}
    why = str(ack.get("detail", ""))
    if cmd and cmd["state"] == "failed":
        return ("rolled_back" if why.startswith("rolled back") else "failed"), why
    if d["state"] in ("pending", "downloading"):
        if fw == r["version"]:
            return "switched", f"reports {fw}"
        if cmd and cmd["state"] == "expired":
            return "failed", "the update command expired unanswered"
    elif d["state"] == "switched":
        if fw != r["version"]:
            return "rolled_back", f"reports {fw} again after the switch"
        if health_ms and health_ms - d["switched_ms"] >= r["healthy_s"] * 1000:
            return "healthy", f"{r['version']} healthy for {r['healthy_s']} s"
    return None


def tick(conn: sqlite3.Connection, now_ms: int) -> None:
    """Advance every running rollout (inside the caller's transaction)."""
    for r in rows.rollouts(conn, "running"):
        devs = rows.devices(conn, r["id"])
        for d in devs:
            if d["state"] in FINAL or d["state"] == "queued":
                continue
            nxt = _next_state(conn, r, d, now_ms)
            if nxt:
                extra = {"switched_ms": now_ms} if nxt[0] == "switched" else {}
                _move(conn, d, nxt[0], nxt[1], now_ms, **extra)
        devs = rows.devices(conn, r["id"])
        bad = [d for d in devs if d["state"] in ("rolled_back", "failed")]
        if bad:
            detail = "; ".join(f"{d['device_id']} {d['state']}: {d['detail']}" for d in bad)
            rows.set_rollout(conn, r["id"], "stopped", detail, now_ms)
            ledger_log.append_decision(conn, "firmware", "controller", {
                "rollout": r["id"], "state": "stopped", "detail": detail}, now_ms)
            apply_alert(conn, RULE, Alert(
                code="firmware_rollout_stopped", device_id=bad[0]["device_id"], active=True,
                severity="critical", subject=f"rollout {r['id']} of {r['kind']} {r['version']}",
                detail={"rollout": r["id"], "devices": {d["device_id"]: d["state"] for d in bad},
                        "why": detail[:500]}), device_ts=None, received_ms=now_ms)
            log.error("rollout %s stopped: %s", r["id"], detail)
            continue
        stage1 = [d for d in devs if d["stage"] == 1]
        queued = [d for d in devs if d["state"] == "queued"]
        if all(d["state"] == "healthy" for d in stage1) and queued:
            b = rows.bundle(conn, r["kind"], r["version"])
            for d in queued:
                _issue(conn, r, d["device_id"], b["size"] if b else 0, "controller", now_ms)
            log.info("rollout %s: stage 1 healthy, %d more devices", r["id"], len(queued))
        elif all(d["state"] == "healthy" for d in devs):
            rows.set_rollout(conn, r["id"], "done", f"{len(devs)} devices healthy", now_ms)
            ledger_log.append_decision(conn, "firmware", "controller", {
                "rollout": r["id"], "state": "done"}, now_ms)


def view(conn: sqlite3.Connection, rollout_id: int) -> dict[str, Any]:
    """A rollout with its devices."""
    r = rows.rollout(conn, rollout_id)
    if r is None:
        raise NotFound(f"no rollout {rollout_id}: `portwatch firmware rollouts` lists them")
    r["devices"] = [{k: v for k, v in d.items() if k not in ("token_sha256", "rollout_id")}
                    for d in rows.devices(conn, rollout_id)]
    return r


def download(conn: sqlite3.Connection, token: str, kind: str, version: str,
             now_ms: int) -> dict[str, Any]:
    """The bundle a download token opens (NotFound for any token that does not open it:
    a device learns nothing else); marks the device ``downloading``."""
    d = rows.by_token(conn, token_sha(token)) if token else None
    r = rows.rollout(conn, d["rollout_id"]) if d else None
    if d is None or r is None or r["kind"] != kind or r["version"] != version or \
            r["state"] != "running" or d["state"] in FINAL:
        raise NotFound("no such firmware for this download token")
    if d["state"] == "pending":
        _move(conn, d, "downloading", "", now_ms)
    b = rows.bundle(conn, kind, version)
    if b is None:
        raise NotFound("no such firmware for this download token")
    return b


async def run_rollouts(db_path: Path, every_s: float = 1.0) -> None:
    """The controller's task: ``tick`` every ``every_s`` seconds until cancelled."""
    def once() -> None:
        store = open_store(db_path, migrate=False)
        try:
            with transaction(store.conn):
                tick(store.conn, now_ms())
        finally:
            store.close()

    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(once)
        except (ControllerError, sqlite3.Error) as exc:
            log.error("firmware rollout tick failed (%s); retrying", exc)
