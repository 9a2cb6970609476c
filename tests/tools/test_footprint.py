"""`python -m tools.footprint`: its help, and a real measurement under MicroPython."""

from __future__ import annotations

import json
import subprocess
import sys

from tools.firmware import REPO


def footprint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tools.footprint", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_footprint_help_explains_itself_instead_of_measuring_a_module_called_help() -> None:
    done = footprint("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m tools.footprint")
    assert "MODULE" in done.stdout and "python -m tools.footprint edge.outbox" in done.stdout
    assert "Traceback" not in done.stderr


def test_footprint_measures_the_named_modules_on_the_real_interpreter() -> None:
    done = footprint("json", "edge.config")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"json", "edge.config", "total", "qstrs", "qstr_room"}
    assert 0 < result["edge.config"] <= result["total"]
    # edge.config's names are interned; room is counted to the end of the last pool
    # (pools of 20, 40, 80 ... entries)
    assert result["qstrs"] > 20 and result["qstr_room"] > 0
    assert result["qstrs"] + result["qstr_room"] in (60, 140, 300, 620, 1260)


def test_footprint_names_a_module_that_does_not_import() -> None:
    done = footprint("edge.no_such_module")
    assert done.returncode == 1
    assert "failed importing edge.no_such_module" in done.stderr
    assert "Traceback" not in done.stderr.splitlines()[0]


def test_footprint_tracker_measures_the_tracker_agent_without_the_modbus_code() -> None:
    done = footprint("--tracker")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"edge.agent", "protocols.nmea", "edge.drivers.tracker"} <= set(result)
    assert not {"edge.net.modbus", "edge.drivers.weighbridge"} & set(result)
    assert 0 < result["edge.drivers.tracker"] < result["total"] < 96 * 1024
