"""`portwatch emulate lab`: the online grain analyzer's emulator on a TCP port
(tools/emulators/lab_analyzer.py), for a lab agent to connect to."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated

import typer
from rich.console import Console

from tools.emulators.lab_analyzer import WEEDS, LabAnalyzerServer, LabScript

console = Console()


def _pairs(items: list[str] | None, what: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in items or []:
        n, sep, value = item.partition("=")
        if not sep or not n.isdigit() or int(n) < 1:
            raise typer.BadParameter(f"{what} {item!r}: write SAMPLE_NUMBER=VALUE, e.g. 5=...")
        out[int(n)] = value
    return out


def lab(
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0: any free one, "
                                                              "printed")] = 0,
    count: Annotated[int, typer.Option(min=1, help="how many samples to send")] = 20,
    interval_s: Annotated[float, typer.Option(
        min=1.0, help="seconds of analyzer time between two samples")] = 60.0,
    speed: Annotated[float, typer.Option(
        min=0.01, help="analyzer seconds per wall second (60: a sample a second)")] = 1.0,
    start_ms: Annotated[int | None, typer.Option(
        help="UTC sampling time of the first sample, epoch ms [default: now]")] = None,
    prefix: Annotated[str, typer.Option(help="sample ids are PREFIX-00001, ...")] = "S",
    weed: Annotated[list[str] | None, typer.Option(
        help=f"sample N finds a quarantine weed: N=SPECIES[:COUNT] (e.g. '5={WEEDS[0]}:3')")
    ] = None,
    wet: Annotated[list[str] | None, typer.Option(
        help="sample N's moisture in per mille: N=PM (e.g. 7=152 for 15.2 %)")] = None,
    outlier: Annotated[list[int] | None, typer.Option(help="sample N is an outlier")] = None,
    corrupt: Annotated[list[int] | None, typer.Option(
        help="sample N's line goes out with a wrong checksum")] = None,
    wait_client_s: Annotated[float, typer.Option(
        help="wait this long for a client before the first sample")] = 30.0,
    resend: Annotated[int, typer.Option(
        min=0, help="results re-sent to a client that connects")] = 3,
) -> None:
    """Serve an online grain analyzer's result lines (RES,...*hh) on a TCP port.

    Twenty samples a second apart (60x), the fifth with three seeds of wild oat, the
    seventh too wet, the ninth's line corrupted:

    Example: portwatch emulate lab --speed 60 --weed '5=Avena sterilis:3' --wet 7=152 --corrupt 9
    """
    weeds: dict[int, tuple[str, int]] = {}
    for n, spec in _pairs(weed, "--weed").items():
        name, _, k = spec.partition(":")
        if not name or (k and not k.isdigit()):
            raise typer.BadParameter(f"--weed {n}={spec!r}: write N=SPECIES[:COUNT]")
        weeds[n] = (name, int(k) if k else 1)
    wets = {}
    for n, v in _pairs(wet, "--wet").items():
        if not v.isdigit() or int(v) > 1000:
            raise typer.BadParameter(f"--wet {n}={v!r}: moisture in per mille, 0-1000")
        wets[n] = int(v)
    script = LabScript(prefix=prefix, interval_s=interval_s, weed=weeds, wet=wets,
                       outlier=tuple(outlier or ()), corrupt=tuple(corrupt or ()),
                       start_ms=start_ms if start_ms is not None else int(time.time() * 1000))

    async def main() -> None:
        server = LabAnalyzerServer(resend=resend)
        got = await server.start(host, port)
        console.print(f"lab analyzer on {host}:{got}: agent source tcp:{host}:{got}",
                      highlight=False)
        deadline = time.monotonic() + wait_client_s
        while server.clients == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling for a client, not synchronising a test
        await server.run(script, count, speed=speed)
        console.print(f"sent {count} samples ({len(server.sent)} lines, "
                      f"{server.connections} connections)", highlight=False)
        await server.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
