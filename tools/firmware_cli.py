"""`portwatch firmware`: the site's firmware key, signed bundles per device kind, deploying
one to a board over USB serial (docs/FIRMWARE.md; README, Deploy to a board)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from controller.secret_files import write_private
from tools import fw_build, fw_deploy, fw_keys, settings
from tools.cli_support import DbOpt, fail
from tools.firmware import FirmwareError

console = Console()
firmware_app = typer.Typer(help="Firmware bundles: the signing key, builds, deploying to a "
                           "board.", no_args_is_help=True)

KeyOpt = Annotated[Path | None, typer.Option(
    "--key", help="firmware key file [default: <store>.fw/firmware.key, beside the store]")]


def key_path(key: Path | None, db: Path | None) -> Path:
    """The firmware key's file: --key, or beside the store (like its site CA)."""
    return key or fw_keys.key_dir_for(db or settings.default_db()) / fw_keys.KEY_FILE


def _show_key(k: fw_keys.FirmwareKey) -> None:
    console.print(f"key id [bold]{k.key_id}[/], file {k.path} (0600: keep it, and a backup, "
                  "off the devices)")
    console.print("public key, for device configs (\"fw_pub\"; `portwatch device add` adds it):")
    console.print(k.pub, highlight=False, soft_wrap=True)


@firmware_app.command("keygen")
def keygen(key: KeyOpt = None, db: DbOpt = None) -> None:
    """Make the site's firmware key (once; an existing key is shown, never replaced).

    Example: portwatch firmware keygen --db var/portwatch.db
    """
    path = key_path(key, db)
    try:
        k, made = fw_keys.load_or_create(path)
    except FirmwareError as exc:
        fail(str(exc))
    console.print("made a new firmware key" if made else "the firmware key is already there")
    _show_key(k)


@firmware_app.command("build")
def build(
    kind: Annotated[str, typer.Argument(help="weighbridge, gps (tracker), rail_reader (rail) "
                                        "or lab")],
    out: Annotated[Path, typer.Option(help="where bundles go")] = fw_build.BUNDLES_DIR,
    key: KeyOpt = None,
    db: DbOpt = None,
) -> None:
    """Compile one device kind's agent into a signed bundle (a directory and a .tar).

    Only the modules that kind's agent may import; the same source and key give the same
    bytes. The firmware key is made on first use (said below).

    Example: portwatch firmware build weighbridge
    """
    try:
        k, made = fw_keys.load_or_create(key_path(key, db))
        if made:
            console.print("[yellow]no firmware key yet: made one[/]")
            _show_key(k)
        with console.status("building") as status:
            b = fw_build.build_bundle(kind, k.d, k.key_id, out_root=out,
                                      progress=lambda s: status.update(s))
    except FirmwareError as exc:
        fail(str(exc))
    table = Table("bundle", "version", Column("files", justify="right"),
                  Column("bytes", justify="right"), "mpy", "key")
    table.add_row(b.kind, b.version, str(b.files), f"{b.size:,}", f"v{b.mpy_abi}", k.key_id)
    console.print(table)
    console.print(f"directory {b.directory}\ntar       {b.tar}")


@firmware_app.command("deploy")
def deploy(
    port: Annotated[str, typer.Option(help="the board's serial port, e.g. /dev/ttyUSB0")],
    config: Annotated[Path, typer.Option(help="device config from `portwatch device add`, "
                                         "with wifi or ethernet added")],
    bundle: Annotated[Path | None, typer.Option(
        help="bundle directory [default: the newest built for the config's kind]")] = None,
    data_dir: Annotated[str, typer.Option(help="the agent's data dir on the board's flash")] =
        fw_deploy.BOARD_DATA_DIR,
    boot_timeout_s: Annotated[float, typer.Option(
        help="how long to wait for the agent's boot line after the reset")] = 120.0,
    controller: Annotated[str | None, typer.Option(
        help="controller URL: also wait for the device's birth there")] = None,
    token: Annotated[str | None, typer.Option(envvar="PORTWATCH_TOKEN",
                                              help="API token for --controller")] = None,
    resume: Annotated[bool, typer.Option(
        help="interrupt the running agent with Ctrl-C instead of a soft reset on connect: "
             "a soft reset would stop the timer that feeds the watchdog an agent armed "
             "(a reset mid-copy); the unix port has no soft reset")] = True,
    reset: Annotated[bool, typer.Option(
        help="reset the board after the copy (--no-reset: start the agent with `import "
             "edge.boot` instead)")] = True,
    dry_run: Annotated[bool, typer.Option(help="check and show the plan, copy nothing")] =
        False,
) -> None:
    """Copy a bundle and the device config to a board with mpremote, reset it, and wait
    until the agent reports its boot on the serial port (and its birth at --controller).

    Example: portwatch firmware deploy --port /dev/ttyUSB0 --config var/wb-gate1.json
    """
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read {config} as a device config ({exc}): write it with "
             "`portwatch device add`")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("fw_pub"), str):
        fail(f"{config} has no fw_pub: add the firmware key's public key (`portwatch firmware "
             "keygen` prints it) as \"fw_pub\"")
    try:
        driver = fw_build.driver_type(str((cfg.get("driver") or {}).get("type") or
                                          cfg.get("kind")))
        directory = bundle or _newest(driver)
        m = fw_deploy.check_bundle(directory, cfg["fw_pub"])
        board_cfg = fw_deploy.board_config(cfg, m.kind, data_dir)
    except FirmwareError as exc:
        fail(str(exc))
    staged = directory.parent / f".{config.stem}.board.json"  # beside the bundle, 0600
    write_private(staged, board_cfg)  # it holds the device's secrets
    plan = fw_deploy.copy_plan(m, staged)
    console.print(f"bundle {m.kind} {m.version} (.mpy v{m.mpy_abi}): {len(plan.files)} files, "
                  f"{plan.size:,} bytes to {port}; config {config} as /{fw_deploy.CONFIG_NAME} "
                  f"(data_dir {data_dir})")
    if dry_run:
        for local, remote in plan.files:
            console.print(f"  {local} -> :{remote}", highlight=False)
        staged.unlink()
        return
    try:
        before = _birth_before(controller, token, cfg["device_id"])
        out = fw_deploy.run_mpremote(fw_deploy.probe_argv(port, resume=resume), lambda _: None)
        abi, platform = fw_deploy.parse_probe(out)
        fw_deploy.check_abi(abi, m)
        console.print(f"board: {platform}, .mpy v{abi}")
        with console.status("copying with mpremote"):
            fw_deploy.run_mpremote(fw_deploy.copy_argv(port, plan, resume=resume),
                                   lambda line: console.print(f"  {line}", highlight=False))
        console.print("copied; " + ("resetting the board" if reset else "starting the agent")
                      + ", waiting for its boot line")
        boot, fw = fw_deploy.watch_boot(
            fw_deploy.serial_lines(port, boot_timeout_s, fw_deploy.start_bytes(reset)),
            m.version,
            lambda line: console.print(f"  [dim]{line}[/]", highlight=False))
        console.print(f"[green]the agent booted[/] (boot {boot}, fw {fw})")
        if controller and before is not None:
            import httpx

            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
                seen = fw_deploy.wait_birth(c, controller, cfg["device_id"], before,
                                            boot_timeout_s)
            console.print(f"[green]the controller has its birth[/] (boot {seen})")
    except FirmwareError as exc:
        fail(str(exc))
    finally:
        staged.unlink(missing_ok=True)


def _newest(driver: str) -> Path:
    found = sorted((p for p in fw_build.BUNDLES_DIR.glob(f"{driver}-*") if p.is_dir()),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        raise FirmwareError(f"no {driver} bundle in {fw_build.BUNDLES_DIR}: build one with "
                            f"`portwatch firmware build {driver}`")
    return found[-1]


def _birth_before(controller: str | None, token: str | None, device_id: str) -> int | None:
    if not controller:
        return None
    if not token:
        raise FirmwareError("--controller needs --token (or PORTWATCH_TOKEN): an API token "
                            "from `portwatch token create`")
    import httpx

    try:
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10) as c:
            return fw_deploy.device_boot(c, controller, device_id)[0]
    except httpx.HTTPError as exc:
        raise FirmwareError(f"cannot ask the controller at {controller}: {exc}") from None
