"""Remote configuration and restart of a device: the ``config`` and ``restart`` commands
(protocols/PROTOCOL.md, Commands) issued, and a device's configuration as its answers tell.

The functional core plus one transaction per command: ``issue_config`` checks the changes
against the device's allow-list (protocols/settings.py, by the driver type it was
registered with) and stores the command with its ``command`` ledger decision
(controller/commands.py ``issue``: signed and sent by the controller's command sender,
re-sent until answered or expired); the device's ``cmdack`` goes to the ledger as every
uplink does. ``view`` is what the API and the CLI show: the values the device applied
(from its ``applied`` answers, oldest first, so the last one wins), whether a restart is
still needed for some of them, and the commands still pending.
"""

from __future__ import annotations

import json
import re
from typing import Any

from controller import commands, registry
from controller.errors import InvalidInput
from controller.storage import Store, now_ms
from controller.storage import commands as rows
from protocols import settings

DEFAULT_TTL_MS = 300_000  # a device that is offline a little while still gets it
_ASSIGNMENT = re.compile(r"^([a-z_.]+)=(-?[0-9]+(?:\.[0-9]+)?)$")


def driver_type(device: dict[str, Any]) -> str:
    """The driver type a device was registered with ("" for none)."""
    return str(json.loads(device.get("driver_json") or "{}").get("type", ""))


def parse_assignments(pairs: list[str]) -> dict[str, int | float]:
    """``["health_interval_s=5", "driver.stable_s=0.5"]`` -> {name: number}."""
    out: dict[str, int | float] = {}
    for p in pairs:
        m = _ASSIGNMENT.match(p.strip())
        if m is None:
            raise InvalidInput(f"{p!r} is not NAME=NUMBER (e.g. health_interval_s=5)")
        text = m.group(2)
        out[m.group(1)] = float(text) if "." in text else int(text)
    return out


def allowed(device: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What may be changed on ``device``: name -> {low, high, live, number}."""
    return {name: {"low": lo, "high": hi, "live": bool(live), "number": bool(number)}
            for name, (lo, hi, live, number) in settings.allowed(driver_type(device)).items()}


def _issue(store: Store, device_id: str, kind: str, body: dict[str, Any], *, actor: str,
           now: int | None, ttl_ms: int) -> dict[str, Any]:
    now = now if now is not None else now_ms()
    with store.transaction() as conn:
        return commands.issue(conn, device_id=device_id, kind=kind, body=body, now_ms=now,
                              device_offset_ms=rows.device_clock_offset(conn, device_id),
                              ttl_ms=ttl_ms, actor=actor)


def _device(store: Store, device_id: str) -> dict[str, Any]:
    device = registry.get(store, device_id)
    if device.get("decommissioned_ms") is not None:
        raise InvalidInput(f"device {device_id!r} was decommissioned: it takes no commands")
    return device


def issue_config(store: Store, device_id: str, changes: dict[str, Any], *, actor: str,
                 now: int | None = None, ttl_ms: int = DEFAULT_TTL_MS) -> dict[str, Any]:
    """Store a ``config`` command for ``device_id`` (checked against its allow-list)."""
    device = _device(store, device_id)
    body = {"driver": driver_type(device), "set": dict(changes)}
    problem = settings.check_config(body)
    if problem:
        raise InvalidInput(f"{device_id}: {problem}")
    return _issue(store, device_id, "config", body, actor=actor, now=now, ttl_ms=ttl_ms)


def issue_restart(store: Store, device_id: str, *, reason: str, actor: str,
                  now: int | None = None, ttl_ms: int = DEFAULT_TTL_MS) -> dict[str, Any]:
    """Store a ``restart`` command for ``device_id``."""
    _device(store, device_id)
    return _issue(store, device_id, "restart", {"reason": reason}, actor=actor, now=now,
                  ttl_ms=ttl_ms)


def view(store: Store, device_id: str, limit: int = 500) -> dict[str, Any]:
    """The device's remote configuration: ``applied`` (name -> value, as its answers say),
    ``restart_needed`` (an applied setting waits for a restart the device has not done
    since), ``pending`` (commands not yet answered), ``allowed`` and ``recent`` (its last
    config and restart commands, newest first)."""
    device = registry.get(store, device_id)
    conn = store.conn
    mine = [r for r in rows.list_commands(conn, device_id=device_id, limit=limit)
            if r["kind"] in ("config", "restart")]
    applied: dict[str, Any] = {}
    restart_needed = False
    for r in reversed(mine):  # oldest first
        ack: dict[str, Any] = json.loads(r["ack_json"]) if r["ack_json"] else {}
        result = ack.get("detail") if ack.get("result") == "duplicate" else ack.get("result")
        if r["kind"] == "config" and result == "applied":
            applied.update(ack.get("values") or json.loads(r["body_json"])["set"])
            restart_needed = restart_needed or bool(ack.get("restart"))
        elif r["kind"] == "restart" and result == "restarting":
            restart_needed = False
    return {"device_id": device_id, "driver": driver_type(device), "applied": applied,
            "restart_needed": restart_needed, "allowed": allowed(device),
            "pending": [_brief(r) for r in mine if r["state"] == "pending"],
            "recent": [_brief(r) for r in mine[:20]]}


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": r["id"], "kind": r["kind"], "body": json.loads(r["body_json"]),
            "state": r["state"], "issued_ms": r["issued_ms"], "expires_ms": r["expires_ms"],
            "ack": json.loads(r["ack_json"]) if r["ack_json"] else None,
            "acked_ms": r["acked_ms"]}
