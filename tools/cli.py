"""The `portwatch` command: a thin mirror of the library, with examples in each help."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from controller import auth, broker_auth, device_status, registry
from controller.drivers import validate_driver
from controller.errors import ControllerError, InvalidInput
from controller.secret_files import write_private
from controller.storage import devices as device_rows
from controller.storage import now_ms
from controller.storage import rejections as rejection_rows
from tools import alert_cli, broker_setup, emulator_cli, fw_keys, ledger_cli, lot_cli, settings, tls
from tools.bench_tracker_mode import bench_trackers
from tools.blend_cli import blend_app, lot_recall
from tools.calibration_cli import calibration_app, lot_balance, lot_draft_survey
from tools.cli_support import DbOpt, SiteOpt, fail, open_db
from tools.dashboard_cli import dashboard_app
from tools.device_config_cli import device_config_cmd, device_restart_cmd
from tools.emulate_cli import emulate_app
from tools.firmware import DEFAULT_HEAP, FirmwareError, agent_command, image_of
from tools.firmware_cli import firmware_app, key_path
from tools.jtt808_cli import jtt808_app
from tools.office_cli import office_app
from tools.procs import run_forwarding_signals
from tools.sample_cli import sample_app
from tools.site_cli import site_app
from tools.trace_cli import trace_app  # also registers lot epcis|report|evidence
from tools.train_cli import train_app
from tools.trips_cli import order_app, trip_app

console = Console()
err = Console(stderr=True)

app = typer.Typer(help="portwatch: edge agents and controller for bulk-cargo supervision.",
                  no_args_is_help=True, add_completion=False)
device_app = typer.Typer(help="Provision and list devices.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens with roles (operator, auditor, admin, "
                         "release_officer).",
                        no_args_is_help=True)
broker_app = typer.Typer(help="Broker logins and ACL generated from the device registry.",
                         no_args_is_help=True)
app.add_typer(device_app, name="device")
app.add_typer(token_app, name="token")
app.add_typer(broker_app, name="broker")
app.add_typer(alert_cli.alert_app, name="alert")
app.add_typer(ledger_cli.ledger_app, name="ledger")
app.add_typer(ledger_cli.witness_app, name="witness")
app.add_typer(emulator_cli.emulator_app, name="emulator")
app.add_typer(site_app, name="site")
app.add_typer(emulate_app, name="emulate")
app.add_typer(lot_cli.lot_app, name="lot")
app.add_typer(trace_app, name="trace")
app.add_typer(office_app, name="office")
app.command("bench-trackers")(bench_trackers)  # tools/bench_tracker_mode.py
app.add_typer(jtt808_app, name="jtt808")
app.add_typer(order_app, name="order")  # transfer orders
app.add_typer(trip_app, name="trip")  # their trips
app.add_typer(train_app, name="train")  # rail train manifests
app.add_typer(blend_app, name="blend")  # ore blends
app.add_typer(sample_app, name="sample")  # lab samples
lot_cli.lot_app.command("recall")(lot_recall)  # the recall list of a lot
app.add_typer(calibration_app, name="calibration")  # instruments' certificates
app.add_typer(dashboard_app, name="dashboard")  # the operators' /ui/ and its screenshots
app.add_typer(firmware_app, name="firmware")  # signed bundles, deploying to a board
lot_cli.lot_app.command("balance")(lot_balance)  # a lot's mass balance
lot_cli.lot_app.command("draft-survey")(lot_draft_survey)



def _db(db: Path | None) -> Path:
    return db or settings.default_db()


def _site(site: str | None) -> str:
    return site or settings.default_site()


@device_app.command("add")
def device_add(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    out: Annotated[Path, typer.Option(help="where to write the agent's config file")],
    kind: Annotated[str, typer.Option(help="weighbridge, gps, rail_reader or lab")] = "weighbridge",
    map_name: Annotated[str, typer.Option("--map", help="indicator register map name")] =
        "portwatch-sim",
    indicator: Annotated[str, typer.Option(help="indicator Modbus TCP HOST:PORT")] =
        "127.0.0.1:5020",
    broker: Annotated[str, typer.Option(help="MQTT broker HOST:PORT the agent uses (TLS)")] =
        "127.0.0.1:8883",
    stable_s: Annotated[float, typer.Option(help="seconds of stable weight before weighing")] = 3.0,
    poll_ms: Annotated[int, typer.Option(help="indicator poll period")] = 200,
    data_dir: Annotated[Path | None, typer.Option(help="agent's data dir (outbox, boot)")] = None,
    description: str = "",
    db: DbOpt = None,
    site: SiteOpt = None,
) -> None:
    """Register a device and write its config file (mode 0600: it holds its secrets).

    Example: portwatch device add wb-gate1 --out var/wb-gate1.json --indicator 10.0.0.7:502
    """
    try:
        ind_host, ind_port = settings.split_hostport(indicator, 502)
        b_host, b_port = settings.split_hostport(broker, tls.TLS_PORT)
    except ValueError as exc:
        fail(str(exc))
    driver = {}
    if kind == "weighbridge":
        driver = {"type": "weighbridge", "map": map_name, "host": ind_host, "port": ind_port,
                  "stable_s": stable_s, "poll_ms": poll_ms}
    try:  # refuse here what the agent would crash on at boot, on the device
        driver = validate_driver(kind, driver)
    except ValueError as exc:
        fail(str(exc))
    try:
        row = registry.provision(open_db(db), device_id=device_id, site=_site(site),
                                 kind=kind, driver=driver, description=description)
    except (ControllerError, ValueError) as exc:
        fail(str(exc))
    data = data_dir or out.resolve().parent / device_id
    ca = tls.ensure_ca(tls.ca_dir_for(_db(db)), site=_site(site))  # the agent pins it
    cfg = registry.device_config(row, mqtt_password=row["mqtt_password"], broker_host=b_host,
                                 broker_port=b_port, data_dir=str(Path(data).resolve()),
                                 tls_ca=tls.ca_der(ca))
    try:  # the key its firmware bundles are signed with: made with the store's first device
        fw_key, fw_made = fw_keys.load_or_create(key_path(None, db))
    except FirmwareError as exc:
        fail(str(exc))
    cfg["fw_pub"] = fw_key.pub
    write_secret_json(out, cfg)
    if fw_made:
        console.print(f"made the site's firmware key {fw_key.key_id}: {fw_key.path}")
    console.print(f"registered [bold]{device_id}[/] ({kind}) at site {_site(site)}; config: {out}")
    console.print(f"boot it with: portwatch agent {out}")


def write_secret_json(path: Path, doc: dict[str, object]) -> None:
    """Write JSON readable by the owner only (0600 whatever the umask, even over an existing
    file of another mode; missing directories 0700)."""
    write_private(path, json.dumps(doc, indent=1, ensure_ascii=False).encode())


def _os_user() -> str:
    """Who runs this command, for the records of what it changed."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


@device_app.command("rotate-key")
def device_rotate_key(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    out: Annotated[Path, typer.Option(help="where to write the device's new config file")],
    grace_s: Annotated[float, typer.Option(help="seconds the old key is still accepted")] =
        3600.0,
    config: Annotated[Path | None, typer.Option(
        help="the device's current config [default: --out, when it exists]")] = None,
    db: DbOpt = None,
) -> None:
    """Give a device a new HMAC key and write its new config; its old key expires after the grace.

    The new config is the current one (broker login, driver, data dir) with the new
    key: restart the agent with it before the grace ends.

    Example: portwatch device rotate-key wb-gate1 --grace-s 3600 --out var/wb-gate1.json
    """
    store = open_db(db)
    try:
        registry.get(store, device_id)
    except ControllerError as exc:
        fail(str(exc))
    source = config or out
    if not source.exists():
        fail(f"{source} does not exist: pass --config with the device's current config file "
             "(it holds the broker password, which the registry keeps only hashed)")
    try:
        current = json.loads(source.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {source} as a device config: {exc}")
    if current.get("device_id") != device_id:
        fail(f"{source} is the config of {current.get('device_id')!r}, not {device_id!r}")
    try:
        rotation = registry.rotate_key(store, device_id, grace_s=grace_s,
                                       actor=f"cli:{_os_user()}")
    except (ControllerError, ValueError) as exc:
        fail(str(exc))
    write_secret_json(out, registry.with_key(current, rotation))
    until = rotation["old_valid_until_ms"] / 1000
    console.print(f"{device_id}: new key {rotation['key_id']} in {out}; key "
                  f"{rotation['old_key_id']} accepted until "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S %Z', time.localtime(until))}")
    console.print(f"restart the agent with it before then: portwatch agent {out}")


@device_app.command("set-key")
def device_set_key(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    pub: Annotated[str, typer.Argument(help="the device's public key: 130 hex digits "
                                       "starting 04 (its birth's `pub`)")],
    db: DbOpt = None,
) -> None:
    """Register or replace a device's own public key (a ledger decision).

    A device registers its key itself at its first birth; use this when it was replaced
    or re-flashed (a `device_key_mismatch` alert), after checking the key on the device.
    From then on its custody events must be signed by this key.

    Example: portwatch device set-key wb-gate1 04a1b2…(130 hex digits)
    """
    try:
        done = registry.set_device_key(open_db(db), device_id, pub.strip().lower(),
                                       actor=f"cli:{_os_user()}")
    except ControllerError as exc:
        fail(str(exc))
    old = done["replaces"]
    console.print(f"{device_id}: device key {pub[:16]}… registered (ledger entry "
                  f"{done['leaf_index']}" + (f", replaces {old[:16]}…)" if old else ")"),
                  highlight=False)


@device_app.command("list")
def device_list(db: DbOpt = None) -> None:
    """List registered devices with status and last contact.

    Example: portwatch device list --db var/portwatch.db
    """
    table = Table("device", "kind", Column("status", no_wrap=True), "fw", "committed seq",
                  "backlog", "last seen (s ago)")
    now = now_ms()
    for row in device_rows.all_rows(open_db(db)):
        d = device_status.summary(row, now)
        backlog = (d["health"] or {}).get("backlog", "")
        ago = f"{(now - d['last_seen_ms']) / 1000:.0f}" if d["last_seen_ms"] else "-"
        table.add_row(d["device_id"], d["kind"], d["status"], d["fw_version"] or "-",
                      str(d["committed_seq"]), str(backlog), ago)
    console.print(table)


@device_app.command("decommission")
def device_decommission(
    device_id: Annotated[str, typer.Argument(help="device id, e.g. wb-gate1")],
    reason: Annotated[str, typer.Option(help="why, for the record")],
    db: DbOpt = None,
) -> None:
    """Take a device out of service: its keys end now, its history stays.

    Run `portwatch broker config` afterwards and reload the broker to remove its login.

    Example: portwatch device decommission wb-gate1 --reason "gate 1 rebuilt"
    """
    try:
        registry.decommission(open_db(db), device_id, reason=reason, actor=f"cli:{_os_user()}")
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"{device_id} decommissioned: its messages are refused from now on; its "
                  "history is kept.\nRemove its broker login: portwatch broker config "
                  "--out <dir>, then reload the broker.")


# remote configuration and restart (tools/device_config_cli.py)
device_app.command("config")(device_config_cmd)
device_app.command("restart")(device_restart_cmd)


def _duration_s(text: str) -> int:
    """Seconds in ``90d``, ``12h``, ``30m``, ``45s`` or a plain number of seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    value, unit = (text[:-1], text[-1]) if text[-1:].lower() in units else (text, "s")
    if not re.fullmatch(r"[0-9]{1,12}", value):
        raise InvalidInput(f"--expires-in {text!r}: give e.g. 90d, 12h, 30m or seconds")
    return int(value) * units[unit.lower()]


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option(help="operator, auditor, admin or release_officer "
                                      "(approves quarantine releases)")],
    name: Annotated[str, typer.Option(help="who or what holds the token")],
    expires_in: Annotated[str | None, typer.Option(
        help="it stops working after this long: 90d, 12h, 30m or seconds (1 minute to 5 "
        "years); default: until revoked")] = None,
    db: DbOpt = None,
) -> None:
    """Create an API token and print it (only once: it is stored hashed).

    Example: portwatch token create --role auditor --name customs-audit --expires-in 90d
    """
    try:
        seconds = None if expires_in is None else _duration_s(expires_in)
        token = auth.create_token(open_db(db), name=name, role=role, actor=f"cli:{_os_user()}",
                                  expires_in_s=seconds)
    except ControllerError as exc:
        fail(str(exc))
    typer.echo(token)


@token_app.command("list")
def token_list(
    revoked: Annotated[bool, typer.Option(help="include revoked tokens")] = False,
    db: DbOpt = None,
) -> None:
    """List API tokens by id, name and role (the tokens themselves are never stored).

    Example: portwatch token list --revoked
    """
    table = Table("id", "name", "role", "state", "created", "expires", "revoked")
    for t in auth.list_tokens(open_db(db), include_revoked=revoked):
        table.add_row(t["token_id"], t["name"], t["role"], t["state"], _when(t["created_ms"]),
                      _when(t["expires_ms"]) if t["expires_ms"] else "never",
                      f"{_when(t['revoked_ms'])} by {t['revoked_by']}" if t["revoked_ms"]
                      else "")
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    token: Annotated[str, typer.Argument(help="the token's id (from `token list`) or name")],
    force: Annotated[bool, typer.Option(
        help="revoke it even if it is the last live admin token")] = False,
    db: DbOpt = None,
) -> None:
    """Revoke an API token: it stops working at once.

    The last live admin token is kept unless --force: `portwatch token create --role
    admin` on the store's host makes a new one.

    Example: portwatch token revoke control-room
    """
    try:
        t = auth.revoke_token(open_db(db), token, actor=f"cli:{_os_user()}", force=force)
    except ControllerError as exc:
        fail(str(exc))
    console.print(f"revoked token {t['token_id']} ({t['name']}, {t['role']})")


def _when(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


@app.command("rejections")
def rejections_list(
    device: Annotated[str | None, typer.Option(
        help="only this device ('*': every unregistered sender)")] = None,
    reason: Annotated[str | None, typer.Option(help="only this reason, e.g. bad_signature")] =
        None,
    since_h: Annotated[float | None, typer.Option(help="only the last HOURS")] = None,
    limit: int = 50,
    db: DbOpt = None,
) -> None:
    """Refused messages counted per device, reason and hour, newest hour first.

    The first few of each are kept in full (GET /api/v1/ingest/rejections); the rest are
    only counted, and summed up in a signed ledger entry when the hour ends.

    Example: portwatch rejections --device wb-gate1 --since-h 24
    """
    since = None if since_h is None else now_ms() - int(since_h * 3_600_000)
    table = Table("window", "device", "reason", Column("count", justify="right"),
                  Column("bytes", justify="right"), Column("kept", justify="right"),
                  "first", "last", "summary")
    for b in rejection_rows.buckets(open_db(db), device_id=device, reason=reason,
                                    since_ms=since, limit=limit):
        summary = ("-" if b["total"] == b["kept"] else
                   "pending" if b["summary_idx"] is None else f"ledger {b['summary_idx']}")
        table.add_row(_when(b["window_ms"]), b["device_id"], b["reason"], str(b["total"]),
                      str(b["bytes"]), str(b["kept"]), _when(b["first_ms"]),
                      _when(b["last_ms"]), summary)
    console.print(table)


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


@app.command("init")
def init(db: DbOpt = None, site: SiteOpt = None) -> None:
    """Create a controller store (its ledger key, the site CA), or check an existing one.

    Example: portwatch init --db var/portwatch.db
    """
    path = _db(db)
    existed = path.exists()
    store = open_db(db, create=True)
    broker_auth.controller_credentials(store)
    store.close()
    ca = tls.ensure_ca(tls.ca_dir_for(path), site=_site(site))
    console.print(f"{'store already there' if existed else 'created the store'}: {path} "
                  f"(site {_site(site)}); site CA {ca}", highlight=False)
    console.print("next: portwatch broker config --out <dir>, then portwatch controller",
                  highlight=False)


@broker_app.command("config")
def broker_config(
    out: Annotated[Path, typer.Option(
        help="directory for mosquitto.conf, passwd, acl and data/ (persistence)")],
    port: Annotated[int, typer.Option(min=1, max=65535,
                                      help="the broker's MQTT-over-TLS port")] = 8883,
    bind: Annotated[str, typer.Option(help="the address the broker listens on")] = "0.0.0.0",
    tls_host: Annotated[list[str] | None, typer.Option(
        "--tls-host", help="a host name or address clients dial, named in the broker's "
        "certificate (repeat it) [default: 127.0.0.1 and localhost]")] = None,
    broker_user: Annotated[str | None, typer.Option(
        "--broker-user", help="the system user Mosquitto runs as, who must own passwd, acl "
        "and data/ [default: mosquitto when run as root, else you]")] = None,
    db: DbOpt = None,
    site: SiteOpt = None,
) -> None:
    """Write a complete Mosquitto config: listener, persistence, logins and ACL from the registry.

    Run it again after adding or removing devices, then reload the broker (it prints how).

    Its listener speaks TLS only, with a certificate signed by the site CA (made next to
    the store on first use) for the --tls-host names.

    Example: portwatch broker config --out /etc/mosquitto/portwatch --tls-host mqtt.port.example
    """
    try:
        written = broker_setup.configure(open_db(db), site=_site(site), out_dir=out, port=port,
                                         bind=bind, broker_user=broker_user,
                                         tls_hosts=tuple(tls_host or tls.DEMO_HOSTS))
    except ValueError as exc:
        fail(str(exc))
    for line in broker_setup.report(written):  # plain lines: commands copy as printed
        typer.echo(line)


@app.command("controller")
def controller_run(
    broker: Annotated[str, typer.Option(help="MQTT broker HOST:PORT")] = "127.0.0.1:8883",
    broker_ca: Annotated[Path | None, typer.Option(
        help="the CA the broker's certificate must chain to [default: the site CA next to "
             "the store]")] = None,
    broker_tls: Annotated[bool, typer.Option(
        help="MQTT over TLS; --no-broker-tls only for a broker reached in clear on "
             "localhost")] = True,
    broker_user: Annotated[str | None, typer.Option(envvar="PORTWATCH_BROKER_USER")] = None,
    broker_password: Annotated[str | None, typer.Option(envvar="PORTWATCH_BROKER_PASSWORD")] =
        None,
    api: Annotated[str, typer.Option(help="API listen HOST:PORT")] = "127.0.0.1:8000",
    db: DbOpt = None,
    site: SiteOpt = None,
    site_file: Annotated[Path | None, typer.Option(
        envvar="PORTWATCH_SITE_FILE",
        help="site description (zones, corridors) [default: the bundled demo site]")] = None,
    checkpoint_every_s: Annotated[float, typer.Option(
        help="sign a ledger checkpoint this often while the ledger grows")] = 60.0,
    rejection_window_s: Annotated[int, typer.Option(
        envvar="PORTWATCH_REJECTION_WINDOW_S", min=1,
        help="count refused messages per device and reason in windows of this length; "
             "each window keeps its first few in full and sums up the rest in the ledger "
             "when it ends")] = 3600,
    witness_uncosigned_after_s: Annotated[float, typer.Option(
        min=1, help="raise the critical alert checkpoint_uncosigned when a configured "
                    "witness (`portwatch witness add`) has not cosigned a checkpoint this "
                    "long after it was signed")] = 600.0,
    metrics_public: Annotated[bool, typer.Option(
        envvar="PORTWATCH_METRICS_PUBLIC",
        help="serve /metrics (Prometheus) without a token, for a scraper on a trusted "
             "network; by default it needs an API token of any role")] = False,
    verbose: bool = False,
) -> None:
    """Run the controller: MQTT ingest plus the REST API (docs at /docs).

    Example: portwatch controller --broker 127.0.0.1:8883 --api 0.0.0.0:8000
    """
    from controller.ingest.rejects import RejectionLimits
    from controller.ingest.service import BrokerSettings
    from controller.main import serve
    from controller.witness_push import PushSettings

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        b_host, b_port = settings.split_hostport(broker, tls.TLS_PORT)
        a_host, a_port = settings.split_hostport(api, 8000)
    except ValueError as exc:
        fail(str(exc))
    db, site = _db(db), _site(site)
    from controller.site import SiteError, current_site, set_site
    try:  # a bad site file stops the start here, with its line
        set_site(site_file) if site_file else current_site()
    except SiteError as exc:
        fail(str(exc), 2)
    conn = open_db(db, create=True)  # the controller owns its store: it may create it
    if broker_user is None:  # the controller's own account, once `portwatch broker config` ran
        broker_user, broker_password = (broker_auth.stored_controller_credentials(conn)
                                        or (None, broker_password))
    conn.close()
    if broker_tls and broker_ca is None:
        broker_ca = tls.ensure_ca(tls.ca_dir_for(db), site=site)
    elif broker_ca is not None and not broker_ca.is_file():
        fail(f"--broker-ca {broker_ca}: no such file")
    console.print(f"controller: site {site}, store {db}, broker {b_host}:{b_port} "
                  f"({'TLS, CA ' + str(broker_ca) if broker_tls else 'in clear'}), "
                  f"API http://{a_host}:{a_port}/docs, dashboard http://{a_host}:{a_port}/ui/")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(db_path=db, site=site, api_host=a_host, api_port=a_port,
                              checkpoint_every_s=checkpoint_every_s,
                              rejection_limits=RejectionLimits(window_s=rejection_window_s),
                              witness_push=PushSettings(
                                  uncosigned_after_s=witness_uncosigned_after_s),
                              metrics_public=metrics_public,
                              broker=BrokerSettings(host=b_host, port=b_port,
                                                    username=broker_user,
                                                    password=broker_password,
                                                    ca=broker_ca if broker_tls else None)))
    except ControllerError as exc:
        fail(str(exc))


@app.command("agent")
def agent_run(
    config: Annotated[Path, typer.Argument(help="config file from `portwatch device add`")],
    heap: Annotated[str, typer.Option(help="MicroPython heap, as on the device")] = DEFAULT_HEAP,
) -> None:
    """Boot the firmware under the real MicroPython interpreter, as on a device; start it
    again when it exits asking to (a restart command from the controller).

    Example: portwatch agent var/wb-gate1.json --heap 96K
    """
    from tools.firmware import AGENT_UMASK, RESTART_EXIT

    if not config.exists():
        fail(f"{config} does not exist: write it with `portwatch device add`")
    os.umask(AGENT_UMASK)  # the firmware's files, a rewritten config too, stay private
    while True:
        try:  # built again each time: a restart after a config change boots that config
            argv, env = agent_command(config.resolve(), heap=heap)
        except FirmwareError as exc:
            fail(str(exc))
        # forwarded: a SIGTERM that killed only this wrapper would leave the firmware running
        status = run_forwarding_signals(argv, env=env, cwd=image_of(env))
        if status != RESTART_EXIT:
            raise typer.Exit(status)
        console.print("[portwatch agent] the firmware asked to restart: starting it again")


@app.command("demo")
def demo(
    api_port: Annotated[int, typer.Option(help="port of the controller's API")] = 8000,
    trucks_every_s: Annotated[float, typer.Option(
        help="seconds from one truck's arrival to the next, at each weighbridge "
             "(at least 4)")] = 6.0,
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files")] =
        Path("var/demo"),
    keep: Annotated[bool, typer.Option(help="keep the previous demo's store")] = False,
    run_for_s: Annotated[float, typer.Option(help="stop after this many seconds (0: never)")] = 0,
) -> None:
    """Run a whole demo site: Mosquitto, emulated weighbridges, agents, controller and API,
    and trucks leaving through the out-gate on trips (trackers, JT/T 808 gateway, one detour);
    a vessel's lot unloading with the lab's samples and a 20-car train past the rail reader.

    Example: portwatch demo --api-port 8000 --run-for-s 60
    """
    from tools.demo import DemoError, run_demo

    try:
        run_demo(workdir=workdir, api_port=api_port, trucks_every_s=trucks_every_s, keep=keep,
                 run_for_s=run_for_s, console=console)
    except DemoError as exc:
        fail(str(exc))


@app.command("bench")
def bench(
    agents: Annotated[int, typer.Option(help="simulated agents (one device each)")] = 10,
    messages: Annotated[int, typer.Option(help="events per agent, per saturating phase")] =
        5_000,
    payload_bytes: Annotated[int, typer.Option(help="pad envelopes to this size (0: ~330 B)")] =
        0,
    window: Annotated[int, typer.Option(help="QoS 1 publishes in flight per agent")] = 8,
    agent_procs: Annotated[int, typer.Option(help="processes the agents are spread over")] = 2,
    batch_max: Annotated[int, typer.Option(help="largest batch per SQLite commit")] = 500,
    latency_rate: Annotated[float, typer.Option(
        help="msgs/s offered in the paced latency phase (0: skip it)")] = 2_000.0,
    latency_s: Annotated[float, typer.Option(help="length of the latency phase")] = 10.0,
    pipeline: Annotated[list[str] | None, typer.Option(
        help="pipeline to measure, repeatable; the first is reported at the top")] = None,
    sys_wait_s: Annotated[float, typer.Option(
        help="wait this long for a fresh $SYS reading of Mosquitto's dropped messages")] = 11.0,
    workdir: Annotated[Path | None, typer.Option(
        help="keep the broker, stores and logs here [default: a temp dir]")] = None,
) -> None:
    """Measure ingest throughput, latency and losses through a real Mosquitto; print JSON.

    Phases: raw-subscriber baseline, then the ingest saturating, then paced for latency.

    Progress goes to stderr, one JSON document to stdout; exit code 1 if anything was lost.

    Example: portwatch bench --agents 10 --messages 5000 > bench.json
    """
    from tools.bench import BenchError, BenchParams, run_bench

    params = BenchParams(agents=agents, messages=messages, payload_bytes=payload_bytes,
                         window=window, agent_procs=agent_procs, batch_max=batch_max,
                         latency_rate=latency_rate,
                         latency_s=latency_s,
                         pipelines=tuple(pipeline or ("ingest", "ingest-no-ledger")),
                         sys_wait_s=sys_wait_s)
    try:
        doc = run_bench(params, workdir=workdir, console=err)
    except BenchError as exc:
        fail(str(exc))
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    if not doc["ok"]:
        fail("messages were lost or dropped: see counts and broker in the JSON")


@app.command("bench-resume")
def bench_resume(
    agents: Annotated[int, typer.Option(help="agents (micropython processes)")] = 3,
    outage_s: Annotated[float, typer.Option(help="how long the broker is down")] = 60.0,
    repeats: Annotated[int, typer.Option(help="outages of each length")] = 3,
    heap: Annotated[str, typer.Option(help="MicroPython heap of each agent")] = DEFAULT_HEAP,
    workdir: Annotated[Path | None, typer.Option(
        help="keep the site's files here [default: a temp dir]")] = None,
) -> None:
    """Measure how soon agents are back after the broker returns; print JSON.

    Seconds from the broker's return to the controller's next stored message from each
    agent, after outages of --outage-s and, as the baseline in the same run, of 2 s.

    Example: portwatch bench-resume --agents 3 --outage-s 60 --repeats 3 > resume.json
    """
    from tools.bench_resume import ResumeError, ResumeParams, run_resume

    try:
        doc = run_resume(ResumeParams(agents=agents, outage_s=outage_s, repeats=repeats,
                                      heap=heap), workdir=workdir, console=err)
    except ResumeError as exc:
        fail(str(exc))
    typer.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
