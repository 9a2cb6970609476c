"""The demo's vessel and train (tools/demo_vessel.py): what the panel and the command lines
show of them, and the train and its manifest as the demo sends them."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
from io import StringIO
from pathlib import Path

from rich.console import Console

from controller.drivers import validate_driver
from tools.demo_panel import Gate, SiteInfo, command_lines, print_banner
from tools.demo_vessel import DEMO_LOT, TRAIN_CARS, TRAIN_ID, panel_info, train_script
from tools.emulators.rail_reader import passed

BOX = set("╭╮╰╯│─")


def site(workdir: Path) -> SiteInfo:
    """A demo site's banner data without the vessel (tokens as long as real ones)."""
    return SiteInfo(
        site="dalian-north", api_url="http://127.0.0.1:8000",
        tokens={"operator": "pwt_" + "o" * 43, "admin": "pwt_" + "a" * 43,
                "auditor": "pwt_" + "u" * 43},
        db_path=workdir / "portwatch.db", broker_port=41883,
        broker_login=("demo-watch", "x" * 22), workdir=workdir,
        gates=(Gate("wb-in", "portwatch-sim", 40001, 40002, "local"),
               Gate("wb-out", "float32-le-sim", 40003, 40004, "controller")),
        trucks_every_s=6.0)


def _with_vessel(tmp_path: Path) -> SiteInfo:
    return dataclasses.replace(site(tmp_path / "demo dir"), vessel=panel_info())


def test_demo_vessel_panel_fits_80_columns_and_names_lot_lab_and_train(tmp_path: Path) -> None:
    out = StringIO()
    print_banner(Console(width=80, file=out, color_system=None), _with_vessel(tmp_path),
                 "portwatch")
    box = [line for line in out.getvalue().splitlines() if BOX & set(line)]
    assert max(len(line) for line in box) < 80
    text = "\n".join(box)
    assert f"lot {DEMO_LOT} unloading at berth-1" in text
    assert "lab-1 samples every 5 s" in text
    assert f"{TRAIN_ID}, {TRAIN_CARS} cars past rail-1 at 20 s" in text


def test_demo_vessel_commands_are_whole_valid_shell_lines(tmp_path: Path) -> None:
    info = _with_vessel(tmp_path)
    db = shlex.quote(str(info.db_path))
    lines = command_lines(info, "portwatch")
    for wanted in (f"portwatch lot show {DEMO_LOT} --db {db}",
                   f"portwatch sample list --lot {DEMO_LOT} --db {db}",
                   f"portwatch train show {TRAIN_ID} --db {db}"):
        assert wanted in lines
        done = subprocess.run(["bash", "-n", "-c", wanted], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 0, done.stderr
    plain = command_lines(site(tmp_path / "demo dir"), "portwatch")
    assert not any(ln.startswith(("portwatch sample", "portwatch train")) for ln in plain)


def test_demo_vessel_train_passes_exactly_its_manifest() -> None:
    script = train_script()
    on_rails = passed(script)
    assert len(script.cars) == TRAIN_CARS == len(on_rails)
    assert [(p.car.initial, p.car.number) for p in on_rails] == [
        (c.initial, c.number) for c in script.cars]  # nothing missing, extra or swapped
    assert all(p.readable for p in on_rails)
    assert len({c.number for c in script.cars}) == TRAIN_CARS


def test_demo_vessel_line_agents_settings_pass_the_controller_check() -> None:
    for kind, driver in (("lab", "lab"), ("rail_reader", "rail")):
        validate_driver(kind, {"type": driver, "source": "tcp:127.0.0.1:40010"})
