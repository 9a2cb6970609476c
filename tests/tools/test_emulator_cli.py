"""`portwatch emulator`: run a real emulator process and drive it through the CLI commands."""

from __future__ import annotations

import itertools
import json
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from tools.cli import app
from tools.emulators.weighbridge import (
    FAULT_KINDS,
    SCENARIOS,
    ControlClient,
    parse_ready,
)
from tools.firmware import REPO
from tools.procs import free_port, stop_process

runner = CliRunner()
FAST = ["--ramp-s", "0.2", "--settle-s", "0.2", "--stable-s", "0.3", "--leave-s", "0.2",
        "--gap-s", "0.05"]


@dataclass
class Running:
    proc: subprocess.Popen[str]
    control: str  # HOST:PORT
    lines: queue.Queue[str]

    @property
    def client(self) -> ControlClient:
        host, port = self.control.rsplit(":", 1)
        return ControlClient(int(port), host=host)


def start(*args: str) -> Running:
    """`portwatch emulator run ARGS` as a real process, once its ready line is out."""
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "emulator", "run", "--port", "0",
                             "--control-port", "0", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    try:
        ready = parse_ready(lines.get(timeout=20))
    except (queue.Empty, Exception):
        stop_process(proc)
        raise
    return Running(proc, ready["control"], lines)


@pytest.fixture
def emulator() -> Iterator[Running]:
    running = start(*FAST)
    try:
        yield running
    finally:
        stop_process(running.proc)


def cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    return r.exit_code, r.output


def test_truck_fault_status_and_log_drive_a_running_emulator(emulator: Running) -> None:
    ctl = ["--control", emulator.control]
    code, out = cli("emulator", "truck", *ctl, "--plate", "辽B12345", "--tare-kg", "15000",
                    "--net-kg", "30120")
    assert code == 0, out
    assert "queued 辽B12345" in out and "gross 45120 kg" in out

    code, out = cli("emulator", "fault", *ctl, "--kind", "exception", "--code", "6",
                    "--count", "3")
    assert code == 0, out
    faults = emulator.client.status()["faults"]
    assert (faults["exception_code"], faults["exceptions_left"]) == (6, 3)
    code, out = cli("emulator", "status", *ctl, "--json")
    assert code == 0 and json.loads(out)["faults"]["exceptions_left"] == 3

    [visit] = emulator.client.wait_visits(1, timeout=20)
    code, out = cli("emulator", "log", *ctl)
    assert code == 0, out
    row = next(line for line in out.splitlines() if "辽B12345" in line)
    assert all(str(n) in row for n in (15000, 30120, 45120)) and "normal" in row
    code, out = cli("emulator", "log", *ctl, "--json")
    assert code == 0 and json.loads(out)["visits"] == [visit]

    code, out = cli("emulator", "clear", *ctl)
    assert code == 0 and emulator.client.status()["faults"]["exceptions_left"] == 0


def test_the_emulator_refuses_what_it_cannot_play_and_the_cli_exits_1(
        emulator: Running) -> None:
    code, out = cli("emulator", "truck", "--control", emulator.control, "--plate", "辽B1",
                    "--tare-kg", "15010", "--net-kg", "30000")
    assert code == 1 and "multiples of the division e = 20" in out
    code, out = cli("emulator", "fault", "--control", emulator.control, "--kind", "gremlins")
    assert code == 1 and all(kind in out for kind in FAULT_KINDS)
    assert emulator.client.status()["queued"] == 0


def test_a_command_without_an_emulator_says_so() -> None:
    code, out = cli("emulator", "status", "--control", f"127.0.0.1:{free_port()}")
    assert code == 1 and "is the emulator running" in out
    code, out = cli("emulator", "log", "--control", "127.0.0.1:99999")
    assert code == 1 and "HOST:PORT" in out


def test_run_with_auto_plays_the_scenario_on_the_arrival_period() -> None:
    running = start(*FAST, "--auto", "3", "--scenario", "never_stable",
                    "--trucks-every-s", "1.2")
    try:
        visits = running.client.wait_visits(3, timeout=20)
    finally:
        stop_process(running.proc)
    assert [v["scenario"] for v in visits] == ["never_stable"] * 3
    assert all(v["stable_from"] is None for v in visits)
    arrivals = [v["arrived"] for v in visits]
    assert [round(b - a, 3) for a, b in itertools.pairwise(arrivals)] == [1.2, 1.2]


def test_run_stops_cleanly_on_sigterm(emulator: Running) -> None:
    emulator.proc.send_signal(signal.SIGTERM)
    assert emulator.proc.wait(timeout=15) == 0


def test_run_refuses_a_scenario_without_random_trucks_and_an_unknown_map() -> None:
    code, out = cli("emulator", "run", "--scenario", "never_stable")
    assert code == 1 and "give --auto too" in out
    code, out = cli("emulator", "run", "--auto", "1", "--scenario", "teleport")
    assert code == 1 and "unknown scenario 'teleport'" in out
    done = subprocess.run([sys.executable, "-m", "tools.cli", "emulator", "run", "--port", "0",
                           "--control-port", "0", "--map", "no-such-map"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "no register map 'no-such-map'" in done.stderr and "portwatch-sim" in done.stderr


def test_scenarios_lists_every_scenario_and_fault_kind_with_a_line_each() -> None:
    code, out = cli("emulator", "scenarios")
    assert code == 0
    lines = out.splitlines()
    for name in (*SCENARIOS, *FAULT_KINDS):
        [line] = [line for line in lines if line.split()[:1] == [name]]
        assert len(line.split()) > 3, f"{name} has no description"
