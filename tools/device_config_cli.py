"""`portwatch device config` and `portwatch device restart`: remote configuration and
restart through signed commands (controller/device_config.py), on the store directly like
the other `device` commands; the running controller sends them and records the answers."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import device_config
from controller.errors import ControllerError
from controller.storage import Store
from controller.storage import commands as rows
from tools.cli_support import DbOpt, fail, open_db

console = Console()
WaitOpt = Annotated[float, typer.Option(
    help="seconds to wait for the device's answer (0: do not wait)")]


def _wait(store: Store, command_id: str, wait_s: float) -> dict[str, Any]:
    """The command's row once the device answered (or it expired), or after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    row = rows.get(store.conn, command_id)
    assert row is not None
    with console.status(f"waiting up to {wait_s:g} s for the device's answer to {command_id}"):
        while row["state"] == "pending" and time.monotonic() < deadline:
            time.sleep(0.2)  # polling another process's writes: nothing to wait on here
            row = rows.get(store.conn, command_id) or row
    return row


def _report(row: dict[str, Any], wait_s: float) -> None:
    ack = json.loads(row["ack_json"]) if row["ack_json"] else None
    if ack is None:
        why = "no answer yet" if wait_s else "not waiting"
        console.print(f"{row['id']}: {row['state']} ({why}); the controller re-sends it every "
                      f"3 s until {row['expires_ms']} (ms); see `portwatch device config "
                      f"{row['device_id']}`", highlight=False)
        if wait_s:
            raise typer.Exit(3)
        return
    extra = ""
    if "values" in ack:
        extra = f" values {json.dumps(ack['values'])}, restart needed: " + (
            "yes" if ack.get("restart") else "no")
    console.print(f"{row['device_id']} answered {ack['result']}"
                  + (f": {ack['detail']}" if ack.get("detail") else "") + extra,
                  highlight=False)
    if row["state"] != "acked":
        raise typer.Exit(1)


def _show(store: Store, device_id: str) -> None:
    v = device_config.view(store, device_id)
    table = Table("setting", "applied", "range", "takes effect", title=(
        f"{device_id} ({v['driver'] or 'no driver'})"
        + (": restart needed" if v["restart_needed"] else "")))
    for name, a in v["allowed"].items():
        table.add_row(name, str(v["applied"].get(name, "-")), f"{a['low']}..{a['high']}",
                      "at once" if a["live"] else "after a restart")
    console.print(table)
    for p in v["pending"]:
        console.print(f"pending: {p['id']} {p['kind']} {json.dumps(p['body'].get('set', {}))}",
                      highlight=False)


def device_config_cmd(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    settings: Annotated[list[str] | None, typer.Argument(
        help="NAME=NUMBER to change; none: show the device's settings")] = None,
    wait_s: WaitOpt = 30.0,
    db: DbOpt = None,
) -> None:
    """Change a device's settings remotely (a signed config command), or show them.

    The names and ranges allowed depend on its driver (shown without NAME=NUMBER). The
    device answers applied (and whether a restart is needed) or refused with the reason.

    Example: portwatch device config wb-gate1 health_interval_s=5 driver.poll_ms=100
    """
    store = open_db(db)
    try:
        if not settings:
            _show(store, device_id)
            return
        changes = device_config.parse_assignments(settings)
        row = device_config.issue_config(store, device_id, changes, actor="cli")
    except ControllerError as exc:
        fail(f"{exc}; see the allowed settings with `portwatch device config {device_id}`")
    console.print(f"config command {row['id']} for {device_id}: {json.dumps(changes)}",
                  highlight=False)
    _report(_wait(store, row["id"], wait_s), wait_s)


def device_restart_cmd(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    reason: Annotated[str, typer.Option(help="why, for the record")] = "",
    wait_s: WaitOpt = 30.0,
    db: DbOpt = None,
) -> None:
    """Restart a device remotely (a signed restart command); it answers restarting first.

    Events waiting in its outbox are on flash: they are sent after the restart.

    Example: portwatch device restart wb-gate1 --reason "new poll interval"
    """
    store = open_db(db)
    try:
        row = device_config.issue_restart(store, device_id, reason=reason, actor="cli")
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"restart command {row['id']} for {device_id}", highlight=False)
    _report(_wait(store, row["id"], wait_s), wait_s)
