"""`portwatch emulate rail`: an AEI rail reader at the rail yard serving scripted trains
(tools/emulators/rail_reader.py) on a TCP port for a rail agent to read."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

import typer

from tools.emulators.rail_reader import Car, RailReaderServer, TrainScript, manifest_cars


async def _serve(scripts: list[TrainScript], host: str, port: int, every_s: float,
                 wait_client_s: float) -> None:
    srv = RailReaderServer()
    try:
        await srv.start(host, port)
        # one line, printed whole: scripts and tests read the port from it
        typer.echo(f"rail reader tcp {host}:{srv.port} trains {len(scripts)}", )
        deadline = time.monotonic() + wait_client_s
        while srv.clients == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for i, script in enumerate(scripts):
            if i:
                await asyncio.sleep(every_s)
            lines = await srv.send_train(script, int(time.time() * 1000))
            typer.echo(f"rail train {script.train_id} sent: {len(lines) - 2} tags to "
                       f"{srv.clients} client(s)")
    finally:
        await srv.close()


def rail(
    cars: Annotated[int, typer.Option(min=0, max=120, help="cars per train")] = 40,
    trains: Annotated[int, typer.Option(min=1, max=1000, help="how many trains")] = 1,
    train_id: Annotated[str, typer.Option(help="id of train 1 (train n: <id>-n)")] = "T-1",
    initial: Annotated[str, typer.Option(help="the cars' owner initial")] = "DLCX",
    first: Annotated[int, typer.Option(help="the first car's number")] = 100001,
    weight_kg: Annotated[int | None, typer.Option(
        help="the in-motion scale's weight of a car (varies +-1.5 t); 0: no scale")] = 80000,
    direction: Annotated[str, typer.Option(help="in or out")] = "out",
    speed_dkmh: Annotated[int, typer.Option(help="radar speed, 0.1 km/h")] = 150,
    missing: Annotated[list[int] | None, typer.Option(
        help="index (from 0) of a manifest car left out of the train (repeat)")] = None,
    extra: Annotated[list[int] | None, typer.Option(
        help="number of a car not on the manifest, coupled mid-train (repeat)")] = None,
    swap: Annotated[str | None, typer.Option(help="two car indexes swapped, as I,J")] = None,
    unreadable: Annotated[list[int] | None, typer.Option(
        help="index of a car whose tag fails its checksum (repeat)")] = None,
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0: any free one, "
                                                             "printed")] = 0,
    every_s: Annotated[float, typer.Option(min=0.0, help="seconds between trains")] = 10.0,
    wait_client_s: Annotated[float, typer.Option(
        help="wait this long for a client before the first train")] = 30.0,
) -> None:
    """Serve AEI reader lines (header, one line per tag, end; XOR checksum) of scripted
    trains on a TCP port; the faults apply to train 1. The cars are those a default
    manifest lists (INITIAL FIRST.. FIRST+CARS-1).

    A 40-car train with car 12 left behind and an extra car 555555 coupled on:

    Example: portwatch emulate rail --cars 40 --missing 12 --extra 555555 --port 7200
    """
    swap_pair: tuple[int, int] | None = None
    if swap:
        try:
            a, b = (int(x) for x in swap.split(","))
        except ValueError:
            raise typer.BadParameter("--swap is I,J (two car indexes)") from None
        swap_pair = (a, b)
    base = manifest_cars(cars, initial, first, weight_kg or None)
    scripts = []
    for n in range(trains):
        tid = train_id if n == 0 else f"{train_id}-{n + 1}"
        if n == 0:
            scripts.append(TrainScript(
                tid, base, direction=direction, speed_dkmh=speed_dkmh,
                missing=tuple(missing or ()), extra=tuple(Car(initial, x) for x in extra or ()),
                swap=swap_pair, unreadable=tuple(unreadable or ())))
        else:
            scripts.append(TrainScript(tid, base, direction=direction, speed_dkmh=speed_dkmh))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(scripts, host, port, every_s, wait_client_s))
