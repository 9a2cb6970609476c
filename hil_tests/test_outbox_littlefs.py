"""The outbox on LittleFS2, the board's file system, with the power cut at every flash operation.

Runs hil_tests/mpy/outbox_littlefs.py under the real ``micropython``: its ``os.VfsLfs2`` is
the LittleFS an ESP32 runs, here on a RAM chip that can be cut at any program or erase.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tools.firmware import REPO, micropython_binary

SCRIPT = REPO / "hil_tests" / "mpy" / "outbox_littlefs.py"


def _run(tmp_path: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, MICROPYPATH=f"{REPO}:.frozen")
    argv = [micropython_binary(), "-X", "heapsize=4M", str(SCRIPT), *args]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    return figures


def test_outbox_littlefs_power_cut_at_every_flash_operation(tmp_path: Path) -> None:
    f = _run(tmp_path, "powercut", "1")
    assert f["flash_ops"] > 200
    assert f["cuts_checked"] == 2 * f["flash_ops"]  # each op cut clean and torn
    assert f["in_flight_append_landed"] > 0 and f["in_flight_ack_landed"] > 0


def test_outbox_littlefs_disk_full_raises_outbox_full_and_recovers(tmp_path: Path) -> None:
    f = _run(tmp_path, "enospc")
    assert f["stored_before_full"] > 20
    assert f["stats_at_full"]["disk_errors"] >= 1
