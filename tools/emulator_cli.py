"""`portwatch emulator`: run the weighbridge emulator and drive it through its control port.

Each command is one request on the emulator's JSON-lines control port
(tools/emulators/weighbridge.py), so no `nc` is needed; replies are printed readably,
or as JSON with ``--json``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from tools import settings
from tools.emulators import ControlError
from tools.emulators import weighbridge as wb

console = Console()
err = Console(stderr=True)

emulator_app = typer.Typer(
    help="Run the weighbridge emulator and drive it (trucks, faults, its log).",
    no_args_is_help=True)

DEFAULT_CONTROL = "127.0.0.1:5021"
ControlOpt = Annotated[str, typer.Option(
    "--control", envvar="PORTWATCH_EMULATOR",
    help="the emulator's control port HOST:PORT (its ready line says which)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the emulator's reply as JSON")]


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(1)


def _client(control: str) -> wb.ControlClient:
    try:
        host, port = settings.split_hostport(control, 5021)
    except ValueError as exc:
        _fail(str(exc))
    return wb.ControlClient(port, host=host)


def _send(control: str, cmd: str, **params: Any) -> dict[str, Any]:
    try:
        return _client(control).send(cmd, **params)
    except ControlError as exc:
        _fail(str(exc))


def _print_json(reply: dict[str, Any]) -> None:
    reply = {k: v for k, v in reply.items() if k != "ok"}
    typer.echo(json.dumps(reply, indent=1, ensure_ascii=False))


@emulator_app.command("run")
def run(
    port: Annotated[int, typer.Option(help="Modbus TCP port (0: any free one)")] = 5020,
    control_port: Annotated[int, typer.Option(help="control port (0: any free one)")] = 5021,
    map_name: Annotated[str, typer.Option(
        "--map", help="register map: a name in protocols/registermaps/ or a .json path")] =
        "portwatch-sim",
    auto: Annotated[int, typer.Option(help="queue this many random trucks at start")] = 0,
    trucks_every_s: Annotated[float | None, typer.Option(
        help="seconds from one random truck's arrival to the next "
             "[default: a crossing plus --gap-s]")] = None,
    scenario: Annotated[str | None, typer.Option(
        help="scenario of the random trucks (see `portwatch emulator scenarios`) "
             "[default: normal]")] = None,
    seed: Annotated[int | None, typer.Option(help="seed for random trucks and noise")] = None,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    unit: Annotated[int, typer.Option(help="Modbus unit id (0 answers any)")] = 1,
    ramp_s: Annotated[float, typer.Option(help="seconds a truck takes to drive on")] = 2.0,
    settle_s: Annotated[float, typer.Option(help="seconds it rocks on the deck")] = 2.0,
    stable_s: Annotated[float, typer.Option(help="seconds it stands stable")] = 5.0,
    leave_s: Annotated[float, typer.Option(help="seconds it takes to drive off")] = 2.0,
    gap_s: Annotated[float, typer.Option(help="least seconds of empty deck between trucks")] =
        1.0,
) -> None:
    """Run a weighbridge emulator in the foreground until Ctrl-C (Modbus TCP + control port).

    It prints `weighbridge emulator ready modbus=HOST:P control=HOST:C map=M unit=U`
    once serving; point an agent at the Modbus port and the other `portwatch
    emulator` commands at the control port. --trucks-every-s and --scenario shape
    the random trucks that --auto queues.

    Example: portwatch emulator run --port 5020 --control-port 5021 --map portwatch-sim
    """
    argv = ["--host", host, "--port", str(port), "--control-port", str(control_port),
            "--map", map_name, "--unit", str(unit), "--ramp-s", str(ramp_s),
            "--settle-s", str(settle_s), "--stable-s", str(stable_s), "--leave-s", str(leave_s),
            "--gap-s", str(gap_s)]
    if scenario is not None and scenario not in wb.SCENARIOS:
        _fail(f"unknown scenario {scenario!r}; use one of {', '.join(wb.SCENARIOS)}")
    if (scenario is not None or trucks_every_s is not None) and not auto:
        _fail("--scenario and --trucks-every-s shape the random trucks of --auto N: "
              "give --auto too (or queue trucks one by one with `portwatch emulator truck`)")
    if auto:
        argv += ["--auto", str(auto), "--scenario", scenario or "normal"]
    if trucks_every_s is not None:
        argv += ["--auto-every", str(trucks_every_s)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    raise typer.Exit(wb.main(argv))


@emulator_app.command("truck")
def truck(
    plate: Annotated[str, typer.Option(help="plate the reader reads, e.g. 辽B12345")],
    tare_kg: Annotated[int, typer.Option(help="empty truck, kg (a multiple of the division)")],
    net_kg: Annotated[int, typer.Option(help="load, kg (a multiple of the division)")],
    scenario: Annotated[str, typer.Option(
        help="how it crosses: see `portwatch emulator scenarios`")] = "normal",
    gap_s: Annotated[float | None, typer.Option(
        help="seconds of empty deck before it drives on [default: the emulator's]")] = None,
    control: ControlOpt = DEFAULT_CONTROL,
    as_json: JsonOpt = False,
) -> None:
    # the example stays on one line, to be copied whole
    """Queue a truck; it drives on once the deck is free (gross = tare + net exactly).

    Example: portwatch emulator truck --control 127.0.0.1:5021 --plate 辽B12345 --tare-kg 15000 --net-kg 30120
    """  # noqa: E501
    params: dict[str, Any] = {"plate": plate, "tare_kg": tare_kg, "net_kg": net_kg,
                              "scenario": scenario}
    if gap_s is not None:
        params["gap_s"] = gap_s
    reply = _send(control, "truck", **params)
    if as_json:
        _print_json(reply)
        return
    console.print(f"queued {plate} (tare {tare_kg} kg, net {net_kg} kg, gross "
                  f"{tare_kg + net_kg} kg, {scenario}); trucks waiting: {reply['queued']}",
                  soft_wrap=True)


@emulator_app.command("fault")
def fault(
    kind: Annotated[str, typer.Option(help="see `portwatch emulator scenarios`")],
    code: Annotated[int, typer.Option(help="exception: the Modbus exception code")] = 6,
    count: Annotated[int, typer.Option(help="exception, timeout: how many reads")] = 1,
    seconds: Annotated[float | None, typer.Option(
        help="timeout: silent this long instead of --count reads; flags: on this long")] =
        None,
    e: Annotated[int, typer.Option(help="noise: jitter in divisions")] = 2,
    on: Annotated[bool, typer.Option("--on/--off", help="flags: set or clear the bit")] = True,
    control: ControlOpt = DEFAULT_CONTROL,
    as_json: JsonOpt = False,
) -> None:
    """Arm a fault: Modbus exceptions, unanswered reads, weight noise or a status flag.

    Example: portwatch emulator fault --control 127.0.0.1:5021 --kind exception --code 6 --count 3
    """
    if kind not in wb.FAULT_KINDS:
        _fail(f"unknown fault {kind!r}; use one of {', '.join(wb.FAULT_KINDS)}")
    params: dict[str, Any] = {"kind": kind, "code": code, "count": count, "e": e, "on": on}
    if seconds is not None:
        params["seconds"] = seconds
    reply = _send(control, "fault", **params)
    if as_json:
        _print_json(reply)
        return
    armed = reply["faults"]
    console.print(f"armed {kind}; now: exceptions left {armed['exceptions_left']} (code "
                  f"{armed['exception_code']}), unanswered reads left {armed['drops_left']}, "
                  f"silent {armed['silent_s']} s, noise {armed['noise_e']} e, flags "
                  f"{', '.join(armed['flags']) or 'none'}", soft_wrap=True)


@emulator_app.command("clear")
def clear(control: ControlOpt = DEFAULT_CONTROL) -> None:
    """Disarm every fault (noise back to its starting level).

    Example: portwatch emulator clear --control 127.0.0.1:5021
    """
    _send(control, "clear")
    console.print("faults cleared")


@emulator_app.command("log")
def log(
    since: Annotated[int, typer.Option(help="only visits after this seq")] = 0,
    control: ControlOpt = DEFAULT_CONTROL,
    as_json: JsonOpt = False,
) -> None:
    """Completed truck visits with the exact plate and weights: the truth to compare with.

    Example: portwatch emulator log --control 127.0.0.1:5021
    """
    reply = _send(control, "log", since=since)
    if as_json:
        _print_json(reply)
        return
    table = Table("seq", "plate", "scenario", "tare kg", "net kg", "gross kg", "shown kg",
                  "arrived", "stable s", "barrier opened")
    for v in reply["visits"]:
        stable = ("-" if v["stable_from"] is None
                  else f"{v['stable_until'] - v['stable_from']:.1f}")
        table.add_row(str(v["seq"]), v["plate"], v["scenario"], str(v["tare_kg"]),
                      str(v["net_kg"]), str(v["gross_kg"]),
                      "-" if v["shown_gross_kg"] is None else str(v["shown_gross_kg"]),
                      _clock(v["arrived"]), stable,
                      "never" if v["barrier_opened_ts"] is None
                      else _clock(v["barrier_opened_ts"]))
    console.print(table)


@emulator_app.command("status")
def status(control: ControlOpt = DEFAULT_CONTROL, as_json: JsonOpt = False) -> None:
    """What the weighbridge shows now: phase, truck on the deck, queue, faults, counters.

    Example: portwatch emulator status --control 127.0.0.1:5021
    """
    reply = _send(control, "status")
    if as_json:
        _print_json(reply)
        return
    on_deck = reply["truck"]["plate"] if reply["truck"] else "-"
    reading = reply["reading"]
    barrier = reply["barrier"]
    gate = ("no barrier coil" if barrier["coil"] is None
            else f"barrier {'open' if barrier['open'] else 'closed'}")
    console.print(f"map {reply['map']}: {reply['phase']}, truck {on_deck}, {gate}, "
                  f"{reply['queued']} waiting, {reply['visits']} visits done; shows gross "
                  f"{reading.get('gross_kg')} kg; {reply['requests']} Modbus requests, "
                  f"{reply['exceptions_sent']} exceptions sent, {reply['replies_dropped']} "
                  f"replies dropped", soft_wrap=True)


@emulator_app.command("scenarios")
def scenarios() -> None:
    """List the truck scenarios and fault kinds the emulator can play, one line each.

    Example: portwatch emulator scenarios
    """
    width = max(map(len, [*wb.SCENARIO_DOCS, *wb.FAULT_DOCS]))
    typer.echo("truck scenarios (portwatch emulator truck --scenario NAME, or run --scenario):")
    for name, doc in wb.SCENARIO_DOCS.items():
        typer.echo(f"  {name:<{width}}  {doc}")
    typer.echo("faults (portwatch emulator fault --kind NAME):")
    for name, doc in wb.FAULT_DOCS.items():
        typer.echo(f"  {name:<{width}}  {doc}")


def _clock(unix_s: float) -> str:
    import time

    return time.strftime("%H:%M:%S", time.localtime(unix_s))
