"""`portwatch site check|show`, `portwatch emulate gps` (a real process read over TCP) and the
controller's `--site-file`, which refuses a bad file before it starts anything."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from controller.site import DEMO_SITE_PATH, set_site
from protocols import nmea
from tools.cli import app
from tools.firmware import REPO
from tools.procs import stop_process

runner = CliRunner()
BAD_ROLE = DEMO_SITE_PATH.read_text().replace("role: in\n", "role: inbound\n")
BAD_LINE = DEMO_SITE_PATH.read_text().splitlines().index("    role: in") + 1


def test_site_check_prints_the_summary_of_a_good_file() -> None:
    result = runner.invoke(app, ["site", "check", str(DEMO_SITE_PATH)])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    for words in ("dalian-north", "wb-out", "c-grain-depot", "25.5", "52.9",
                  "ok (11 zones, 2 corridors, 4 devices)"):
        assert words in out, words


def test_site_check_bad_file_prints_its_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(BAD_ROLE)
    result = runner.invoke(app, ["site", "check", str(bad)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert f"line {BAD_LINE}: device 'wb-in': a weighbridge's role is 'in' or 'out'" in out


def test_site_show_uses_the_site_file_from_the_environment(tmp_path: Path) -> None:
    other = tmp_path / "port.yaml"
    other.write_text(DEMO_SITE_PATH.read_text().replace("id: dalian-north", "id: other-port"))
    set_site(None)
    result = runner.invoke(app, ["site", "show"], env={"PORTWATCH_SITE_FILE": str(other)})
    assert result.exit_code == 0, result.output
    assert "other-port" in result.output
    (tmp_path / "bad.yaml").write_text(BAD_ROLE)
    result = runner.invoke(app, ["site", "show"],
                           env={"PORTWATCH_SITE_FILE": str(tmp_path / "bad.yaml")})
    assert result.exit_code == 2
    assert f"line {BAD_LINE}" in result.output


def test_site_commands_help_has_an_example() -> None:
    for cmd in (["site", "check"], ["site", "show"], ["emulate", "gps"]):
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0
        assert "Example: portwatch" in result.output, cmd


def test_controller_site_file_bad_refuses_to_start_before_touching_the_store(
        tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(BAD_ROLE)
    db = tmp_path / "pw.db"
    result = runner.invoke(app, ["controller", "--db", str(db), "--site-file", str(bad),
                                 "--api", "127.0.0.1:1"])
    assert result.exit_code == 2
    assert f"line {BAD_LINE}" in " ".join(result.output.split())
    assert not db.exists()


def test_emulate_gps_serves_nmea_on_a_tcp_port_per_truck() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "emulate", "gps", "--trucks", "2", "--speed", "100",
         "--wait-client-s", "10", "--tamper-at-min", "1", "--start-ms", "1796083200000"],
        cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()
    out = proc.stdout
    assert out is not None

    def pump() -> None:
        for line in out:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        ready = [lines.get(timeout=30) for _ in range(2)]
        ports = [int(x.split("tcp 127.0.0.1:")[1].split()[0]) for x in ready]
        assert ready[0].startswith("gps truck 1 corridor c-feed-mill")
        assert ready[1].startswith("gps truck 2 corridor c-grain-depot")
        socks = [socket.create_connection(("127.0.0.1", p), timeout=10) for p in ports]
        got = b""
        deadline = time.monotonic() + 20
        while got.count(b"$GNRMC") < 150 and time.monotonic() < deadline:
            got += socks[0].recv(65536)
        assert socks[1].recv(100).startswith(b"$PPWIO,1,1,0*")
        for s in socks:
            s.close()
        text = got.decode().split("\r\n")[:-1]
        fixes = [nmea.parse(x) for x in text if x.startswith("$GNRMC")]
        assert fixes[0]["ts"] == 1796083200000
        assert [f["ts"] for f in fixes] == [1796083200000 + i * 1000
                                            for i in range(len(fixes))]
        assert nmea.sentence("PPWIO,1,1,1") in text  # opened at minute 1
    finally:
        stop_process(proc)


@pytest.fixture(autouse=True)
def _reset_site() -> object:
    yield
    set_site(None)
