"""`portwatch alert`: list, show, acknowledge and resolve alerts on the store directly.

The same operations as the API's /api/v1/alerts routes (controller/alerts.py); each
transition is a ledger decision with ``cli:<os user>`` as the actor.
"""

from __future__ import annotations

import getpass
import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from controller import alerts as alerts_mod
from controller.errors import ControllerError
from controller.storage import now_ms
from controller.storage import supervision as alert_rows
from tools.cli_support import DbOpt, fail, open_db

console = Console()
err = Console(stderr=True)

alert_app = typer.Typer(help="Alerts raised by supervision rules: list, show, ack, resolve.",
                        no_args_is_help=True)

CommentOpt = Annotated[str, typer.Option(
    "--comment", "-m", help="who is on it / what was done (1-500 characters)")]




def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


@alert_app.command("list")
def alert_list(
    state: Annotated[str | None, typer.Option(
        help="open, acknowledged, resolved or active [default: active]")] = None,
    all_: Annotated[bool, typer.Option("--all", help="resolved alerts too")] = False,
    device: Annotated[str | None, typer.Option(help="only this device")] = None,
    limit: int = 50,
    db: DbOpt = None,
) -> None:
    """List alerts (supervision's findings) with their state and age, newest first.

    Example: portwatch alert list --state acknowledged --device wb-gate1
    """
    now = now_ms()
    table = Table("id", "device", "code", "severity", "subject", "state", "raised", "age",
                  "by")
    try:
        found = alerts_mod.list_alerts(open_db(db), state=state,
                                       active=None if all_ else True, device_id=device,
                                       limit=limit)
    except ControllerError as exc:
        fail(str(exc))
    for a in found:
        end = a["cleared_ms"] or now
        st = alert_rows.alert_state(a)
        by = a["cleared_by"] if st == "resolved" else a["acked_by"] if st == "acknowledged" \
            else ""
        table.add_row(str(a["id"]), a["device_id"], a["code"], a["severity"], a["subject"],
                      st, _when(a["raised_ms"]), _age((end - a["raised_ms"]) / 1000), by or "")
    console.print(table)


def _show(a: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in a.items()}, ensure_ascii=False, default=str))
        return
    console.print(f"alert {a['id']}  {a['code']}  {a['severity']}  [bold]{a['state']}[/]",
                  highlight=False)
    console.print(f"rule {a['rule']}  device {a['device_id'] or '-'}  subject "
                  f"{a['subject'] or '-'}", highlight=False)
    console.print(f"detail {a['detail_json']}", highlight=False, soft_wrap=True)
    table = Table("when", "action", "by", "comment")
    for h in a["history"]:
        table.add_row(_when(h["at_ms"]), h["action"], h["by"], h["comment"])
    console.print(table)


@alert_app.command("show")
def alert_show(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (portwatch alert list)")],
    as_json: Annotated[bool, typer.Option("--json", help="print it as JSON")] = False,
    db: DbOpt = None,
) -> None:
    """Show one alert with its history: raised, acknowledged, resolved (who, when, comment).

    Example: portwatch alert show 42
    """
    try:
        _show(alerts_mod.get_alert(open_db(db), alert_id), as_json)
    except ControllerError as exc:
        fail(str(exc))


@alert_app.command("ack")
def alert_ack(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (portwatch alert list)")],
    comment: CommentOpt,
    db: DbOpt = None,
) -> None:
    """Acknowledge an open alert: someone is on it. It stays active until resolved.

    Example: portwatch alert ack 42 -m "night shift: calling the driver"
    """
    try:
        _show(alerts_mod.acknowledge(open_db(db), alert_id, actor=_actor(), comment=comment),
              False)
    except ControllerError as exc:
        fail(str(exc))


@alert_app.command("resolve")
def alert_resolve(
    alert_id: Annotated[int, typer.Argument(help="the alert's id (portwatch alert list)")],
    comment: CommentOpt,
    db: DbOpt = None,
) -> None:
    """Resolve an active alert (open or acknowledged) with what was done.

    Example: portwatch alert resolve 42 -m "truck came back and was weighed, ticket 1187"
    """
    try:
        _show(alerts_mod.resolve(open_db(db), alert_id, actor=_actor(), comment=comment),
              False)
    except ControllerError as exc:
        fail(str(exc))
