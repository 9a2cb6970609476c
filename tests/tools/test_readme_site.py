"""The README's deploy-and-operate walkthrough, run as written from a fresh copy of the repo.

The block between ``<!-- site-walkthrough:start -->`` and ``end`` is run by bash (``set -e``)
in a copy of the repository made the way a clone is (tracked and new files only: no var/,
no build/), with this checkout's virtualenv first on PATH and the copy's code imported. Only
the four port numbers change, to free ones, so that the run does not depend on what else
listens on this machine. Everything it starts (emulator, Mosquitto, controller, agent) is in
one process group, killed at the end whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tools.procs import free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PORTS = ("1884", "8000", "5020", "5021")


def walkthrough() -> str:
    text = README.read_text()
    m = re.search(r"<!-- site-walkthrough:start -->\s*```bash\n(.*?)```\s*"
                  r"<!-- site-walkthrough:end -->", text, re.S)
    assert m, "README.md lost its site walkthrough markers"
    return m.group(1)


def fresh_copy(dest: Path) -> Path:
    """The files a clone would have (plus files not committed yet), nothing generated."""
    names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return fresh_copy(tmp_path / "portwatch")


def _traversable(path: Path) -> None:
    """Let other users enter the copy's parents, as they can a checkout under /work or /opt:
    Mosquitto reads its files as user mosquitto, and pytest's temp dirs are root-only."""
    for parent in (path, *path.parents):
        if parent == Path("/"):
            break
        parent.chmod(parent.stat().st_mode | 0o001)


def test_readme_site_walkthrough_runs_as_written_and_weighs_the_truck(site: Path) -> None:
    _traversable(site)
    script = walkthrough()
    for port in PORTS:
        script = re.sub(rf"(?<![0-9]){port}(?![0-9])", str(free_port()), script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PORTWATCH_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(site)
    proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=site, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    text = out.decode(errors="replace")
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                     for p in sorted(site.glob("var/site/*.log")))
    assert proc.returncode == 0, f"walkthrough failed:\n{text}\n{logs}"
    assert '"plate": "辽B12345"' in text and '"net_kg": 30120' in text, text
    assert '"gross_kg": 45120' in text and '"tare_kg": 15000' in text, text
    assert re.search(r"wb-gate1\s.*online", text), text  # portwatch device list
    deck = text.split("└")[-1]  # after the device table: the emulator's own record
    assert "辽B12345" in deck and "30120" in deck, text
    assert text.rstrip().endswith("[]"), text  # no alert for a clean crossing
    # the store was made where the walkthrough said, in the copy, not in this checkout
    assert (site / "var/site/portwatch.db").is_file()
    assert (site / "var/site/wb-gate1.json").stat().st_mode & 0o077 == 0
