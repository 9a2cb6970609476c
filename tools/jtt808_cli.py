"""``portwatch jtt808``: the JT/T 808 gateway, its terminals and an emulated terminal."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from controller import registry
from controller.errors import ControllerError
from controller.gateways import accounts
from controller.gateways.jtt808_events import device_id as terminal_device_id
from tools import settings, tls
from tools.cli_support import DbOpt, SiteOpt, fail, open_db

jtt808_app = typer.Typer(help="JT/T 808 trackers: the gateway, its terminals, an emulated "
                              "terminal.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
DEFAULT_PORT = 7808
STATUS_FILE = "status.json"
STATE_FILE = "gateway.db"

StateOpt = Annotated[Path | None, typer.Option(
    "--state-dir", envvar="PORTWATCH_JTT808_STATE",
    help="the gateway's outbox, seqs and status file [default: jtt808/ next to the store]")]




def state_dir_for(db: Path) -> Path:
    """The gateway's default state directory: ``jtt808/`` beside the store."""
    return db.resolve().parent / "jtt808"


@jtt808_app.command("serve")
def serve(
    listen: Annotated[str, typer.Option(help="TCP HOST:PORT the terminals dial")] =
        f"0.0.0.0:{DEFAULT_PORT}",
    broker: Annotated[str, typer.Option(help="MQTT broker HOST:PORT")] = "127.0.0.1:8883",
    broker_ca: Annotated[Path | None, typer.Option(
        help="the CA the broker's certificate must chain to [default: the site CA next to "
             "the store]")] = None,
    broker_tls: Annotated[bool, typer.Option(
        help="MQTT over TLS; --no-broker-tls only for a broker reached in clear on "
             "localhost")] = True,
    idle_s: Annotated[float, typer.Option(
        help="close a terminal's connection after this long without a frame")] = 180.0,
    answer_timeout_s: Annotated[float, typer.Option(
        help="answer a report only if the broker confirms it within this long")] = 10.0,
    db: DbOpt = None,
    site: SiteOpt = None,
    state_dir: StateOpt = None,
    verbose: bool = False,
) -> None:
    """Run the JT/T 808 gateway: terminals in over TCP, positions out over MQTT.

    It logs in to the broker with its own account (made on first use; then regenerate
    the broker's files with `portwatch broker config` and reload it) and publishes for
    each terminal provisioned with `portwatch jtt808 add-terminal`. Counters: `portwatch
    jtt808 status`.

    Example: portwatch jtt808 serve --listen 0.0.0.0:7808 --broker 127.0.0.1:8883
    """
    from controller.gateways.jtt808 import serve as run_gateway
    from controller.gateways.jtt808_uplink import Uplink
    from controller.ingest.service import BrokerSettings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        l_host, l_port = settings.split_hostport(listen, DEFAULT_PORT)
        b_host, b_port = settings.split_hostport(broker, tls.TLS_PORT)
    except ValueError as exc:
        fail(str(exc))
    db_path, site_id = db or settings.default_db(), site or settings.default_site()
    store = open_db(db_path)
    user, password = accounts.credentials(store)
    store.close()
    if broker_tls and broker_ca is None:
        broker_ca = tls.ensure_ca(tls.ca_dir_for(db_path), site=site_id)
    state = state_dir or state_dir_for(db_path)
    uplink = Uplink(store_path=db_path, state_path=state / STATE_FILE, site=site_id,
                    broker=BrokerSettings(host=b_host, port=b_port, username=user,
                                          password=password,
                                          ca=broker_ca if broker_tls else None),
                    answer_timeout_s=answer_timeout_s)
    console.print(f"jtt808 gateway: site {site_id}, terminals on {l_host}:{l_port}, broker "
                  f"{b_host}:{b_port} as {user}, state {state}", highlight=False)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_gateway(uplink, host=l_host, port=l_port, site=site_id,
                                    status_path=state / STATUS_FILE, idle_s=idle_s))
    finally:
        uplink.close()


@jtt808_app.command("login")
def login(db: DbOpt = None) -> None:
    """Make the gateway's broker login (once) and say what to do next.

    Example: portwatch jtt808 login && portwatch broker config --out /etc/mosquitto/portwatch
    """
    store = open_db(db)
    user, _ = accounts.credentials(store)
    store.close()
    typer.echo(f"gateway login {user} (password kept in the store); regenerate the broker's "
               "files with `portwatch broker config` and reload the broker")


@jtt808_app.command("add-terminal")
def add_terminal(
    phone: Annotated[str, typer.Argument(help="the terminal's SIM number, e.g. 13800138000")],
    description: str = "",
    db: DbOpt = None,
    site: SiteOpt = None,
) -> None:
    """Provision a JT/T 808 terminal as device jt-<phone> (kind gps).

    Then regenerate the broker's files (`portwatch broker config`) so that the gateway
    may publish for it.

    Example: portwatch jtt808 add-terminal 13800138000 --description "truck 辽B12345"
    """
    if not phone.isdigit() or len(phone) > 20:
        fail(f"phone {phone!r}: up to 20 digits, as the terminal sends it")
    store = open_db(db)
    try:
        row = registry.provision(store, device_id=terminal_device_id(phone),
                                 site=site or settings.default_site(), kind="gps",
                                 description=description)
    except (ControllerError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    typer.echo(f"provisioned {row['device_id']} (kind gps, site {row['site']})")


@jtt808_app.command("status")
def status(
    db: DbOpt = None,
    state_dir: StateOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the status file as is")] =
        False,
) -> None:
    """Show the running gateway's counters (bad frames per reason, reports, outbox).

    Example: portwatch jtt808 status --state-dir var/jtt808
    """
    path = (state_dir or state_dir_for(db or settings.default_db())) / STATUS_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"no readable status at {path} ({exc}): is `portwatch jtt808 serve` running "
             "with this --state-dir?")
    age = time.time() - path.stat().st_mtime
    if as_json:
        typer.echo(json.dumps(doc, indent=1, sort_keys=True))
        return
    term, brk = doc["terminal_side"], doc["broker_side"]
    console.print(f"gateway pid {doc['pid']} boot {doc['boot']} site {doc['site']} "
                  f"(status written {age:.0f} s ago)", highlight=False)
    console.print(f"terminals online {len(doc['terminals_online'])}: "
                  f"{', '.join(doc['terminals_online']) or '-'}", highlight=False)
    console.print(f"connections {term['connections']}, reports {term['reports']} "
                  f"({term['fixes']} fixes), answered {term['answered']}, unanswered "
                  f"{term['unanswered']}, registrations refused "
                  f"{term['registrations_refused']}", highlight=False)
    console.print(f"bad frames {term['bad_frames'] or '{}'}, bytes dropped "
                  f"{term['dropped_bytes']}", highlight=False)
    console.print(f"broker connected {brk['connected']}, published {brk['published']}, "
                  f"acks {brk['acks']}, outbox {doc['outbox']}", highlight=False)


def _demo_fixes(count: int, interval_s: float, start_ms: int) -> Iterator[tuple[int, ...]]:
    # a truck leaving the demo port's gate (38.93 N 121.65 E) north-west at ~36 km/h
    for i in range(count):
        yield (start_ms + round(i * interval_s * 1000), 38930000 + i * 70, 121650000 - i * 60,
               360, 315, 0, 3)


async def _paced(fixes: Iterator[tuple[int, ...]], interval_s: float
                 ) -> AsyncIterator[tuple[int, int, int, int, int, int, int]]:
    for fix in fixes:
        if len(fix) != 7:
            raise ValueError(f"a fix is 7 integers (ts_ms, lat_e6, lon_e6, speed_dkmh, "
                             f"course_deg, alarm_bits, status_bits), got {list(fix)}")
        a, b, c, d, e, f, g = (int(v) for v in fix)
        yield (a, b, c, d, e, f, g)
        await asyncio.sleep(interval_s)


@jtt808_app.command("terminal")
def terminal(
    gateway: Annotated[str, typer.Option(help="the gateway's HOST:PORT")] =
        f"127.0.0.1:{DEFAULT_PORT}",
    phone: Annotated[str, typer.Option(help="SIM number (provisioned as jt-<phone>)")] =
        "13800138000",
    plate: str = "辽B12345",
    fixes: Annotated[Path | None, typer.Option(
        help="JSON lines, each [ts_ms, lat_e6, lon_e6, speed_dkmh, course_deg, alarm_bits, "
             "status_bits] [default: a demo drive out of the port]")] = None,
    count: Annotated[int, typer.Option(help="demo fixes to send")] = 30,
    interval_s: Annotated[float, typer.Option(help="seconds between fixes")] = 1.0,
    protocol: Annotated[str, typer.Option(help="header version: 2013 or 2019")] = "2013",
    verbose: bool = False,
) -> None:
    """Run an emulated JT/T 808 terminal against a gateway; print what it did.

    Example: portwatch jtt808 terminal --gateway 127.0.0.1:7808 --phone 13800138000 --count 10
    """
    from tools.jtt808_terminal import TerminalRefused, run_terminal

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    if protocol not in ("2013", "2019"):
        fail(f"--protocol {protocol}: 2013 or 2019")
    try:
        host, port = settings.split_hostport(gateway, DEFAULT_PORT)
    except ValueError as exc:
        fail(str(exc))
    if fixes is not None:
        try:
            source: Iterator[tuple[int, ...]] = iter(
                [tuple(json.loads(line)) for line in fixes.read_text().splitlines()
                 if line.strip()])
        except (OSError, ValueError) as exc:
            fail(f"--fixes {fixes}: {exc}")
    else:
        source = _demo_fixes(count, interval_s, int(time.time() * 1000))
    try:
        stats = asyncio.run(run_terminal(host, port, phone, _paced(source, interval_s),
                                         plate=plate,
                                         version=None if protocol == "2013" else 1))
    except TerminalRefused as exc:
        fail(str(exc))
    except (OSError, ValueError) as exc:
        fail(f"terminal stopped: {exc}")
    typer.echo(json.dumps({k: v for k, v in vars(stats).items() if k != "auth_code"},
                          default=str))
