"""Put a firmware bundle and a device config on a board with mpremote, then watch it boot.

Core: the bundle check (hashes, the signature under the config's ``fw_pub``), the board's
config, the copy plan and the mpremote command lines. Shell: running mpremote, reading
the serial port for the agent's boot line, asking the controller for the device's birth.
README, Deploy to a board, says what was tested here (the unix port behind a pty) and
what only on hardware.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tools.firmware import FirmwareError
from tools.fw_build import KIND_DRIVERS, SIG_CONTEXT

CONFIG_NAME = "config.json"  # edge/boot.py reads it from the board's root
BOARD_DATA_DIR = "data"  # the outbox and keys on the board's flash, relative to /
BOOT_LINE = re.compile(r"boot (\d+), fw (\S+), next seq (\d+)")
# the agent's refusal and an uncaught exception's traceback (unstamped, at the line start)
FAILED_LINE = re.compile(r"^(portwatch agent: bad config|Traceback \(most recent|\w+Error: )")
BAUD = 115200  # ESP32 MicroPython's REPL on its USB-serial bridge


@dataclass(frozen=True)
class Manifest:
    """A checked bundle: its directory and manifest fields."""

    directory: Path
    kind: str
    version: str
    mpy_abi: int
    paths: tuple[str, ...]


def verify_signature(pub_hex: str, manifest: bytes, sig_hex: str) -> bool:
    """True when ``sig_hex`` (r || s) signs SIG_CONTEXT + ``manifest`` under ``pub_hex``."""
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(),
                                                           bytes.fromhex(pub_hex))
        raw = bytes.fromhex(sig_hex)
        if len(raw) != 64:
            return False
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                   int.from_bytes(raw[32:], "big"))
        key.verify(der, SIG_CONTEXT + manifest, ec.ECDSA(hashes.SHA256()))
    except (ValueError, InvalidSignature):
        return False
    return True


def check_bundle(directory: Path, fw_pub: str) -> Manifest:
    """The bundle at ``directory``, after checking every file against the manifest and
    the manifest's signature against ``fw_pub`` (FirmwareError saying what to do)."""
    try:
        raw = (directory / "manifest.json").read_bytes()
        sig = (directory / "manifest.sig").read_text().strip()
        m = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise FirmwareError(f"{directory} is not a firmware bundle ({exc}): build one with "
                            "`portwatch firmware build KIND`") from None
    if not verify_signature(fw_pub, raw, sig):
        raise FirmwareError(f"{directory}/manifest.sig does not verify with the config's "
                            "fw_pub: the bundle was signed with another firmware key (build "
                            "it with this site's key, or fix fw_pub in the config)")
    for f in m["files"]:
        p = directory / f["path"]
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            raise FirmwareError(f"{p} is missing or differs from the manifest: build the "
                                "bundle again")
    return Manifest(directory, m["kind"], m["version"], m["mpy_abi"],
                    tuple(f["path"] for f in m["files"]))


def board_config(cfg: dict[str, Any], kind: str, data_dir: str = BOARD_DATA_DIR) -> bytes:
    """The config file for the board: ``cfg`` checked as the firmware checks it, for a
    bundle of driver type ``kind``, with a network and ``data_dir`` on the board's flash."""
    import edge.config  # the firmware's own checkers (plain Python: they run here too)
    import edge.config_net

    doc = json.loads(json.dumps(cfg))  # a copy: check() fills defaults in place
    doc["data_dir"] = data_dir
    try:
        edge.config_net.check_network(  # type: ignore[no-untyped-call]
            edge.config.check(json.loads(json.dumps(doc))))  # type: ignore[no-untyped-call]
    except edge.config.ConfigError as exc:
        raise FirmwareError(f"the device config is not usable: {exc}") from None
    want = (cfg.get("driver") or {}).get("type") or KIND_DRIVERS.get(cfg["kind"], "")
    if want != kind:
        raise FirmwareError(f"the config is for a {want or cfg['kind']} device, the bundle for "
                            f"{kind}: build it with `portwatch firmware build {cfg['kind']}`")
    if not cfg.get("wifi") and not cfg.get("ethernet"):
        raise FirmwareError('a board needs a network: add "wifi": {"ssid": ..., "password": '
                            '...} (or "ethernet") to the config (README, Deploy to a board)')
    return json.dumps(doc, indent=1, sort_keys=True).encode()


@dataclass(frozen=True)
class CopyPlan:
    """What goes where on the board: directories to make, (local file, board path) pairs,
    and the files of an older bundle to remove."""

    dirs: tuple[str, ...]
    files: tuple[tuple[Path, str], ...]

    @property
    def size(self) -> int:
        return sum(p.stat().st_size for p, _ in self.files)


def copy_plan(bundle: Manifest, config_file: Path) -> CopyPlan:
    """Every file of the bundle to its path under the board's root, then the manifest (the
    board then knows what it runs) and the config as ``config.json``."""
    paths = [*bundle.paths, "manifest.json", "manifest.sig"]
    dirs = sorted({"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)})
    files = [(bundle.directory / p, p) for p in paths] + [(config_file, CONFIG_NAME)]
    return CopyPlan(tuple(dirs), tuple(files))


def prepare_script(plan: CopyPlan) -> str:
    """MicroPython run on the board before the copy: make the directories, and remove the
    files under them that the bundle does not have (an older bundle's module left there
    could still be imported)."""
    keep = sorted(r for _, r in plan.files)
    return ("import os\n"
            f"K=set({keep!r})\n"
            f"for d in {list(plan.dirs)!r}:\n"
            " try:os.mkdir(d)\n"
            " except OSError:pass\n"
            f"for d in {list(plan.dirs)!r}:\n"
            " for e in os.ilistdir(d):\n"
            "  p=d+'/'+e[0]\n"
            "  if e[1]==0x8000 and p not in K:os.remove(p);print('removed',p)\n")


ABI_PROBE = "import sys;print('PWABI',sys.implementation._mpy&255,sys.platform)"


def mpremote_binary() -> str:
    """Path of ``mpremote`` (PyPI mpremote, a dependency of portwatch)."""
    for c in (Path(sys.prefix) / "bin" / "mpremote", shutil.which("mpremote")):
        if c and os.access(c, os.X_OK):
            return str(c)
    raise FirmwareError("mpremote not found: run scripts/setup.sh (it installs mpremote)")


def probe_argv(port: str, *, resume: bool) -> list[str]:
    """mpremote printing the board's .mpy version and platform (``PWABI 6 esp32``)."""
    return [mpremote_binary(), "connect", port, *(["resume"] if resume else []),
            "exec", ABI_PROBE]


def copy_argv(port: str, plan: CopyPlan, *, resume: bool) -> list[str]:
    """One mpremote run: prepare, then copy every file; the board is left at its REPL.

    ``resume``: no soft reset on connect; the agent is interrupted with Ctrl-C and, at the
    REPL, keeps its watchdog fed from a timer (edge/boot.py), which a soft reset would
    stop while the watchdog stays armed: the board would reset in the middle of the copy.
    The unix port has no soft reset at all."""
    argv = [mpremote_binary(), "connect", port, *(["resume"] if resume else []),
            "exec", prepare_script(plan)]
    for local, remote in plan.files:
        argv += ["+", "fs", "cp", str(local), ":" + remote]
    return argv


def start_bytes(reset: bool) -> bytes:
    """What the watcher types at the board's REPL once the port is open (so no line of the
    boot is missed: opening a port drops what it had buffered): a hard reset, after which
    the board runs /main.py; or (the unix port has no machine.reset) ``import edge.boot``,
    as /main.py does."""
    cmd = b"import machine; machine.reset()" if reset else b"import edge.boot"
    return b"\r\x03\x03" + cmd + b"\r"


def parse_probe(output: str) -> tuple[int, str]:
    """(mpy version, platform) from ABI_PROBE's output."""
    m = re.search(r"PWABI (\d+) (\S+)", output)
    if not m:
        raise FirmwareError(f"the board did not answer mpremote's probe ({output.strip()!r}): "
                            "is it a MicroPython board on that port, not busy in another "
                            "terminal?")
    return int(m.group(1)), m.group(2)


def check_abi(board_abi: int, bundle: Manifest) -> None:
    """FirmwareError unless the board loads the bundle's .mpy files."""
    if board_abi != bundle.mpy_abi:
        raise FirmwareError(f"the board's MicroPython loads .mpy v{board_abi}, the bundle is "
                            f"v{bundle.mpy_abi}: flash a MicroPython release whose mpy-cross "
                            "emits that version (`mpy-cross --version` says which), or build "
                            "with the mpy-cross that matches the board")


def watch_boot(lines: Iterable[str], fw_version: str,
               on_line: Callable[[str], None] = lambda _: None) -> tuple[int, str]:
    """(boot number, firmware version) from the agent's boot line among ``lines`` (the
    board's serial output); FirmwareError at a failure line or when the lines end first."""
    seen: list[str] = []
    for line in lines:
        on_line(line)
        seen = [*seen[-9:], line]
        m = BOOT_LINE.search(line)
        if m:
            if fw_version.split("+")[0] != m.group(2):
                raise FirmwareError(f"the board booted fw {m.group(2)}, not "
                                    f"{fw_version}: did the copy finish?")
            return int(m.group(1)), m.group(2)
        if FAILED_LINE.search(line):
            more = "\n".join(seen)
            raise FirmwareError(f"the agent did not start:\n{more}\n(README, Deploy to a "
                                "board: When it does not come up)")
    raise FirmwareError("no boot line from the agent in time: see the serial output above "
                        "(README, Deploy to a board: When it does not come up)")


def serial_lines(port: str, timeout_s: float, send: bytes = b"",
                 baud: int = BAUD) -> Iterable[str]:
    """Lines read from the serial port ``port`` (after writing ``send`` to it) until
    ``timeout_s`` has passed."""
    import serial  # pyserial: mpremote's own dependency

    end = time.monotonic() + timeout_s
    buf = b""
    with serial.serial_for_url(port, baud, timeout=0.2) as s:
        s.write(send)
        while time.monotonic() < end:
            buf += s.read(256)
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line.decode(errors="replace").rstrip("\r")


def device_boot(client: Any, url: str, device_id: str) -> tuple[int, str]:
    """(boot, status) of the device at the controller (GET /api/v1/devices/{id})."""
    r = client.get(f"{url.rstrip('/')}/api/v1/devices/{device_id}")
    if r.status_code == 404:
        raise FirmwareError(f"the controller does not know {device_id}: register it with "
                            "`portwatch device add`")
    r.raise_for_status()
    d = r.json()
    return int(d.get("boot") or 0), str(d.get("status"))


def wait_birth(client: Any, url: str, device_id: str, after_boot: int,
               timeout_s: float) -> int:
    """The device's boot number once the controller has a birth newer than
    ``after_boot`` with the device online; FirmwareError after ``timeout_s``."""
    end = time.monotonic() + timeout_s
    while True:
        boot, status = device_boot(client, url, device_id)
        if boot > after_boot and status == "online":
            return boot
        if time.monotonic() > end:
            raise FirmwareError(f"the controller saw no new birth of {device_id} in "
                                f"{timeout_s:.0f} s (boot {boot}, {status}): check the "
                                "broker address and the board's network in its serial log")
        time.sleep(1.0)  # polling a remote API: nothing here to wait on instead


def run_mpremote(argv: list[str], on_line: Callable[[str], None],
                 timeout_s: float = 600) -> str:
    """Run mpremote, passing each output line to ``on_line``; its output, or FirmwareError."""
    out: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as p:
        assert p.stdout is not None
        for line in p.stdout:
            out.append(line)
            on_line(line.rstrip("\n"))
        rc = p.wait(timeout=timeout_s)
    if rc:
        raise FirmwareError(f"mpremote failed ({rc}): {''.join(out[-5:]).strip()} - is the "
                            "port right, and no other program (a serial terminal) holding it?")
    return "".join(out)
