"""`portwatch agent` passes SIGTERM and SIGINT on to the firmware and waits for it to exit."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tools.firmware import REPO
from tools.procs import free_port, run_forwarding_signals, stop_process, wait_until


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (from /proc: no psutil here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has stopped running: it only awaits its reaping)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def running_with(text: str) -> list[int]:
    """Live processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text in cmdline(int(entry.name)) \
                    and alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:  # exited while we looked
            continue
    return found


@pytest.fixture
def agent_config(tmp_path: Path) -> Path:
    """A device config whose broker port has nothing listening: the firmware keeps retrying.

    Written directly (what `portwatch device add` writes, without a driver): the test is
    about the process, not about provisioning.
    """
    out = tmp_path / "wb-sig.json"
    out.write_text(json.dumps({
        "device_id": "wb-sig", "site": "s1", "kind": "weighbridge", "key_id": "k1",
        "secret_hex": "ab" * 32, "data_dir": str(tmp_path / "wb-sig"), "driver": {},
        "mqtt": {"host": "127.0.0.1", "port": free_port(), "user": "wb-sig",
                 "password": "pw"}}))
    return out


@pytest.fixture
def agent(agent_config: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`portwatch agent CONFIG` as a real process, its output lines in a queue."""
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "agent", str(agent_config)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield proc, lines
    finally:
        stop_process(proc)
        for pid in running_with(str(agent_config)):  # never leave a firmware behind, even
            os.kill(pid, signal.SIGKILL)               # one the wrapper orphaned


def wait_for_line(lines: queue.Queue[str], text: str, timeout: float = 30.0) -> str:
    seen: list[str] = []

    def found() -> str | None:
        while not lines.empty():
            seen.append(lines.get())
            if text in seen[-1]:
                return seen[-1]
        return None

    return wait_until(found, timeout, what=f"{text!r} in the agent's output (so far: {seen})")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_portwatch_agent_stops_the_firmware_too(
        agent: tuple[subprocess.Popen[str], queue.Queue[str]], sig: signal.Signals) -> None:
    proc, lines = agent
    wait_for_line(lines, "uplink down")  # booted, and retrying the unreachable broker
    [firmware] = wait_until(lambda: children(proc.pid), 10, what="the firmware process")
    assert "edge.main" in cmdline(firmware)

    proc.send_signal(sig)  # to the wrapper only, as a service manager's stop would

    wait_until(lambda: not alive(firmware), 15, what="the firmware to exit")
    code = proc.wait(timeout=15)
    if sig == signal.SIGTERM:  # the firmware dies of it: reported as a shell would
        assert code == 128 + signal.SIGTERM
    else:  # the firmware stops cleanly on KeyboardInterrupt
        assert code == 0
        assert wait_for_line(lines, "stopped", timeout=5)


def test_a_child_ignoring_the_signal_is_killed_after_the_grace(tmp_path: Path) -> None:
    """The wrapper never hangs on a child that will not stop, and says how it ended."""
    ready = tmp_path / "ready"
    child = ("import pathlib, signal, time\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             f"pathlib.Path({str(ready)!r}).touch()\n"
             "time.sleep(60)\n")
    wrapper = ("import sys\n"
               "from tools.procs import run_forwarding_signals\n"
               f"sys.exit(run_forwarding_signals([sys.executable, '-c', {child!r}], "
               "kill_after_s=0.5))\n")
    proc = subprocess.Popen([sys.executable, "-c", wrapper], cwd=REPO)
    try:
        wait_until(ready.exists, 15, what="the stubborn child to start")
        [pid] = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGKILL
        assert not alive(pid)
    finally:
        stop_process(proc)


def test_exit_status_of_a_child_that_exits_by_itself_is_passed_through() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    assert run_forwarding_signals([sys.executable, "-c", "raise SystemExit(3)"]) == 3
    # the handlers are put back: this process answers the signals as it did before
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
