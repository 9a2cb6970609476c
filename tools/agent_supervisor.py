"""Restart the firmware the way a board's reset and watchdog would: ``python -m
tools.agent_supervisor CONFIG [--heap 96K] [--pidfile F]``.

The firmware process is started again when it exits ``RESTART`` (75: a reset it asked
for, after an over-the-air switch), when it crashes (any other non-zero status but 2, a bad
config), and when it is killed (a power cut in a test: ``kill -9`` of the pid in
``--pidfile``). It stops with 0 or 2, and on SIGTERM / SIGINT (taking the firmware with it).
The firmware dies with the supervisor (PR_SET_PDEATHSIG), as a board's code does.
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import subprocess
import sys
import time
from pathlib import Path

from tools.firmware import DEFAULT_HEAP, agent_command, image_of

RESTART = 75


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    """Run the firmware until it stops for good; its last exit status."""
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("config", type=Path)
    a.add_argument("--heap", default=DEFAULT_HEAP)
    a.add_argument("--pidfile", type=Path)
    args = a.parse_args(argv)
    proc: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: object) -> None:
        if proc is not None and proc.poll() is None:
            proc.terminate()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    boots = 0
    while True:
        cmd, env = agent_command(args.config, heap=args.heap)
        proc = subprocess.Popen(cmd, env=env, cwd=image_of(env), preexec_fn=_die_with_parent)
        if args.pidfile:
            args.pidfile.write_text(str(proc.pid))
        boots += 1
        code = proc.wait()
        if code in (0, 2):
            return code
        why = {RESTART: "asked for a restart"}.get(code, f"exited {code}")
        print(f"supervisor: firmware {why}; starting it again (start {boots + 1})",
              flush=True)
        if code != RESTART:
            time.sleep(0.5)  # a crash loop must not spin the CPU (a board's reset takes longer)


if __name__ == "__main__":
    sys.exit(main())
