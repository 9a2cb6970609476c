"""Process helpers shared by the demo, the benchmark and the tests: ports, waiting, children."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not become true in time."""


class ProcessDied(RuntimeError):
    """A process a condition depends on has exited: waiting longer is pointless."""


# Under pytest-xdist each worker takes ports from its own block below Linux's ephemeral
# range (32768-60999): a port handed out by bind(0) may be given to another worker's
# outgoing connection once freed, and a test that restarts a broker on its port would then
# find it taken. Blocks of 1,000 from 12000 leave room for 20 workers.
_WORKER_BLOCK = 1000
_WORKER_BASE = 12000
_next_in_block = 0


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else None


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (a worker's own under xdist)."""
    global _next_in_block
    index = _worker_index()
    if index is not None and index < 20:
        for _ in range(_WORKER_BLOCK):
            port = _WORKER_BASE + index * _WORKER_BLOCK + _next_in_block
            _next_in_block = (_next_in_block + 1) % _WORKER_BLOCK
            if _bindable(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        found: int = s.getsockname()[1]
        return found


def wait_until(
    condition: Callable[[], T | bool | None],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> T:
    """Poll ``condition`` until it returns a truthy value and return that value.

    Raises WaitTimeout naming ``what`` and the last exception seen, so a failing
    test says what it was waiting for rather than just timing out.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value  # type: ignore[return-value]
        except ProcessDied:
            raise
        except Exception as exc:  # the condition may race with a starting process
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5.0) -> None:
    """Terminate a child politely, then kill it; never raise."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def kill_process(proc: subprocess.Popen[Any] | None, timeout: float = 10.0) -> None:
    """SIGKILL a child, as a crash or a power cut would, and reap it; never raise."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=timeout)


def run_forwarding_signals(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    kill_after_s: float = 10.0,
) -> int:
    """Run ``argv`` in the foreground, passing ``signals`` on to it; return its exit status.

    A wrapper that just calls the child dies of SIGTERM and leaves the child running
    (a service manager stopping ``portwatch agent`` would orphan the firmware). Here
    each signal is sent on to the child and the wrapper waits for it to exit; a child
    still running ``kill_after_s`` after the first signal is killed. A child killed by
    signal N gives 128 + N, as a shell reports it. Call it from the main thread.
    """
    proc: subprocess.Popen[bytes] | None = None
    pending: list[int] = []
    killer: list[threading.Timer] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc is None:  # arrived while the child was being started: sent right after
            pending.append(signum)
            return
        if proc.poll() is None:
            proc.send_signal(signum)
        if not killer:
            timer = threading.Timer(kill_after_s, _kill_if_running, args=(proc,))
            timer.daemon = True
            timer.start()
            killer.append(timer)

    # Handlers go in before the child exists, so no signal finds the default action
    # (die, orphaning the child) between the fork and the wait.
    previous = {sig: signal.signal(sig, forward) for sig in signals}
    try:
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd)
        for signum in pending:
            forward(signum, None)
        code = proc.wait()  # PEP 475: waitpid resumes after each handler has run
    finally:
        for timer in killer:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - code if code < 0 else code


def _kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
