"""`portwatch firmware deploy` against the unix MicroPython's REPL behind a pty.

No board here. What runs for real: mpremote (the PyPI package) driving the unix port's raw
REPL through a pseudo-terminal: its probe of the .mpy version, the directory preparation,
every file copied, then the agent started with ``import edge.boot`` (--no-reset: the unix
port has no machine.reset) and its boot line read back from the same pty by the deploy's
serial watcher. The unix port's REPL has no soft reset, hence --resume (mpremote would
wait for "soft reboot" forever). The board's root is the REPL's working directory.
What only a board can show (a reset, flash, WiFi) is listed in README, Deploy to a board.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest
from fw_support import TEST_ONLY_FW_D, TEST_ONLY_FW_PUB, TEST_ONLY_KEY_ID, device_config

from tools import fw_build
from tools.firmware import micropython_binary

WIFI = {"ssid": "port-ops", "password": "correct horse"}


class SerialCable:
    """The unix MicroPython REPL on one pty, mpremote and the watcher on another: the
    bytes are relayed between the two masters, as a USB-serial bridge would carry them."""

    def __init__(self, board: Path) -> None:
        self.ma, sa = pty.openpty()
        self.mb, self.sb = pty.openpty()
        for fd in (self.ma, sa, self.mb, self.sb):
            tty.setraw(fd)
        self.port = os.ttyname(self.sb)
        # 200 KiB, not 96: with no reset, the agent starts on the heap the whole mpremote
        # session left behind (at 96 KiB: MemoryError in its first p256 load). A board
        # boots fresh after its reset; that heap is tested at 96 KiB in
        # test_firmware_bundle.py (its "board" entry: edge.boot in a new process)
        self.proc = subprocess.Popen([micropython_binary(), "-X", "heapsize=200K", "-i"],
                                     stdin=sa, stdout=sa, stderr=sa, cwd=board,
                                     env={**os.environ, "MICROPYPATH": ".frozen"},
                                     start_new_session=True)
        os.close(sa)
        self.seen = bytearray()  # what the "board" said, for the failure messages
        self._stop = False
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.ma, self.mb], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    return
                if fd == self.ma:
                    self.seen += data
                os.write(self.mb if fd == self.ma else self.ma, data)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._stop = True
        self.thread.join(timeout=5)
        for fd in (self.ma, self.mb, self.sb):
            os.close(fd)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> fw_build.Bundle:
    root = tmp_path_factory.mktemp("bundles")
    return fw_build.build_bundle("weighbridge", TEST_ONLY_FW_D, TEST_ONLY_KEY_ID, out_root=root)


@pytest.fixture
def cable(tmp_path: Path) -> Iterator[tuple[SerialCable, Path]]:
    board = tmp_path / "board"
    board.mkdir()
    (board / "edge").mkdir()
    (board / "edge" / "stale.mpy").write_bytes(b"an older bundle's module")
    c = SerialCable(board)
    try:
        yield c, board
    finally:
        c.close()


def _deploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.cli", "firmware", "deploy", *args],
                          capture_output=True, text=True, timeout=180,
                          env={**os.environ, "COLUMNS": "200"})


def test_deploy_copies_the_bundle_and_config_and_sees_the_agent_boot(
        bundle: fw_build.Bundle, cable: tuple[SerialCable, Path], tmp_path: Path) -> None:
    c, board = cable
    cfg = tmp_path / "wb.json"
    cfg.write_text(json.dumps(device_config("weighbridge", wifi=WIFI, fw_pub=TEST_ONLY_FW_PUB)))
    done = _deploy("--port", c.port, "--config", str(cfg), "--bundle", str(bundle.directory),
                   "--resume", "--no-reset", "--boot-timeout-s", "60")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out + "\n--- board ---\n" + c.seen.decode(errors="replace")
    assert "board: linux, .mpy v6" in out
    assert "the agent booted (boot 1, fw 0.1.0)" in out
    m = json.loads((bundle.directory / "manifest.json").read_bytes())
    for f in m["files"]:  # every file, byte for byte, at its place under the board's root
        assert (board / f["path"]).read_bytes() == (bundle.directory / f["path"]).read_bytes()
    assert (board / "manifest.sig").read_bytes() == (bundle.directory / "manifest.sig").read_bytes()
    on_board = json.loads((board / "config.json").read_text())
    assert on_board["data_dir"] == "data" and on_board["wifi"] == WIFI
    assert not (board / "edge" / "stale.mpy").exists()  # the older bundle's module went
    assert (board / "data").is_dir()  # the agent ran from the board's root
    assert b"network: the host's (unix port)" in c.seen  # edge/boot.py ran first


def test_deploy_refuses_before_copying(bundle: fw_build.Bundle, tmp_path: Path) -> None:
    cfg = tmp_path / "wb.json"
    cfg.write_text(json.dumps(device_config("weighbridge", wifi=WIFI)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory))
    assert done.returncode == 1 and "has no fw_pub" in done.stderr
    other = "04" + TEST_ONLY_FW_PUB[2:-2] + ("00" if TEST_ONLY_FW_PUB[-2:] != "00" else "01")
    cfg.write_text(json.dumps(device_config("weighbridge", wifi=WIFI, fw_pub=other)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory))
    assert done.returncode == 1 and "does not verify with the config's fw_pub" in done.stderr
    cfg.write_text(json.dumps(device_config("weighbridge", fw_pub=TEST_ONLY_FW_PUB)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory))
    assert done.returncode == 1 and "a board needs a network" in done.stderr
    cfg.write_text(json.dumps(device_config("tracker", wifi=WIFI, fw_pub=TEST_ONLY_FW_PUB)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory))
    assert done.returncode == 1 and "the bundle for weighbridge" in done.stderr
    cfg.write_text(json.dumps(device_config("weighbridge", wifi={"ssid": "a", "password": "x"},
                                            fw_pub=TEST_ONLY_FW_PUB)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory), "--dry-run")
    assert done.returncode == 1 and "8 to 63 characters" in done.stderr
    cfg.write_text(json.dumps(device_config("weighbridge", wifi=WIFI, fw_pub=TEST_ONLY_FW_PUB)))
    done = _deploy("--port", "/dev/null", "--config", str(cfg), "--bundle",
                   str(bundle.directory), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"{bundle.directory}/edge/agent.mpy -> :edge/agent.mpy" in done.stdout
    assert "-> :config.json" in done.stdout
