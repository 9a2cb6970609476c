"""scripts/link-portwatch.sh (run by setup.sh) puts `portwatch` on a fresh shell's PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.firmware import REPO

SCRIPT = REPO / "scripts" / "link-portwatch.sh"
ENTRY = REPO / ".venv" / "bin" / "portwatch"
SYSTEM_PATH = "/usr/bin:/bin"


def link(bin_dir: Path, *, as_user: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["bash", str(SCRIPT)]
    if as_user is not None:
        argv = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={"PATH": SYSTEM_PATH, "PORTWATCH_BIN_DIR": str(bin_dir)})


def fresh_shell(command: str, path: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env={"PATH": path, "HOME": os.environ.get("HOME", "/root")})


@pytest.fixture(autouse=True)
def _installed() -> None:
    assert ENTRY.exists(), "scripts/setup.sh makes .venv/bin/portwatch before linking it"


@pytest.mark.skipif(os.geteuid() != 0, reason="links only as root")
def test_as_root_it_links_once_and_a_fresh_shell_runs_portwatch(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    first = link(bin_dir)
    assert first.returncode == 0, first.stderr
    target = bin_dir / "portwatch"
    assert target.is_symlink() and Path(os.readlink(target)).is_absolute()
    assert target.resolve() == ENTRY.resolve()
    assert f"linked {target}" in first.stdout
    before = target.lstat()

    again = link(bin_dir)  # idempotent: nothing said, nothing touched
    assert again.returncode == 0 and again.stdout == again.stderr == ""
    assert target.lstat().st_ino == before.st_ino and target.lstat().st_mtime == before.st_mtime

    done = fresh_shell("portwatch emulator scenarios", f"{bin_dir}:{SYSTEM_PATH}")
    assert done.returncode == 0, done.stderr
    assert "wheels_off_left" in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="links only as root")
def test_a_different_portwatch_already_there_is_left_alone_with_the_path_line(
        tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    other = bin_dir / "portwatch"
    other.write_text("#!/bin/sh\necho another portwatch\n")
    done = link(bin_dir)
    assert done.returncode == 0
    assert other.read_text() == "#!/bin/sh\necho another portwatch\n" and not other.is_symlink()
    assert "left alone" in done.stderr
    assert f'export PATH="{REPO.resolve()}/.venv/bin:$PATH"' in done.stderr

    other.unlink()  # a link to another checkout that still exists is somebody's too
    (tmp_path / "other-checkout").mkdir()
    (tmp_path / "other-checkout" / "portwatch").write_text("#!/bin/sh\n")
    other.symlink_to(tmp_path / "other-checkout" / "portwatch")
    done = link(bin_dir)
    assert "left alone" in done.stderr
    assert os.readlink(other) == str(tmp_path / "other-checkout" / "portwatch")


def test_without_a_bin_dir_it_prints_the_one_line_that_works(tmp_path: Path) -> None:
    done = link(tmp_path / "no-such-dir")
    assert done.returncode == 0
    [line] = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("export")]
    assert not (tmp_path / "no-such-dir").exists()
    run = fresh_shell(f"{line}; portwatch emulator scenarios", SYSTEM_PATH)
    assert run.returncode == 0, run.stderr
    assert "never_stable" in run.stdout


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="needs root to become another user")
def test_not_as_root_it_links_nothing_and_prints_the_path_line(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(mode=0o777)
    tmp_path.chmod(0o755)
    done = link(bin_dir, as_user="65534")
    if "Permission denied" in done.stderr:
        pytest.skip(f"user nobody cannot read the checkout here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert not (bin_dir / "portwatch").exists()
    assert f'export PATH="{REPO.resolve()}/.venv/bin:$PATH"' in done.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="links only as root")
def test_a_link_into_a_removed_checkout_is_replaced(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "portwatch").symlink_to(tmp_path / "gone" / ".venv" / "bin" / "portwatch")
    r = link(bin_dir)
    assert r.returncode == 0 and "which is gone: replaced" in r.stderr, r.stderr
    assert (bin_dir / "portwatch").resolve() == ENTRY.resolve()
