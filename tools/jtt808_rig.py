"""The JT/T 808 gateway as a process of a rig's site (tools/rig.py): tests and the demo.

``start_gateway(rig)`` gives the gateway its broker login (regenerating the broker's files
with its ACL), starts ``portwatch jtt808 serve`` on a free port and waits until it listens
and is connected to the broker; ``add_terminal(rig, phone)`` provisions a terminal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.gateways import accounts
from controller.gateways.jtt808_events import device_id as terminal_device_id
from controller.storage import open_store
from tools.firmware import REPO
from tools.jtt808_cli import STATUS_FILE
from tools.procs import free_port, kill_process, port_open, stop_process, wait_until
from tools.rig import Rig, RigError


@dataclass
class GatewayProcess:
    """One running gateway: its port, state directory and log; restartable."""

    rig: Rig
    port: int
    state_dir: Path
    log_path: Path
    answer_timeout_s: float = 10.0
    proc: subprocess.Popen[bytes] | None = None

    def status(self) -> dict[str, Any]:
        """The gateway's status file ({} before the first one is written)."""
        try:
            doc: dict[str, Any] = json.loads((self.state_dir / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return {}
        return doc

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until it listens and its broker link is up."""
        rig = self.rig
        (self.state_dir / STATUS_FILE).unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "tools.cli", "jtt808", "serve", "--db", str(rig.db_path),
               "--site", rig.site, "--listen", f"127.0.0.1:{self.port}",
               "--broker", f"127.0.0.1:{rig.broker.port}", "--state-dir", str(self.state_dir),
               "--answer-timeout-s", str(self.answer_timeout_s), "--verbose",
               *(["--broker-ca", str(rig.ca)] if rig.ca else ["--no-broker-tls"])]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self._alive() and port_open(self.port)
                       and self.status().get("broker_side", {}).get("connected") is True,
                       timeout, what="the JT/T 808 gateway to listen and reach the broker")
        except AssertionError as exc:
            raise RigError(f"{exc}; see {self.log_path}") from exc

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RigError(f"the JT/T 808 gateway exited; see {self.log_path}")
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s."""
        stop_process(self.proc)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: a crash."""
        kill_process(self.proc)
        self.proc = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_gateway(rig: Rig, *, port: int | None = None,
                  answer_timeout_s: float = 10.0) -> GatewayProcess:
    """Give the gateway its login and ACL, start it, return it (see the module's doc)."""
    store = open_store(rig.db_path)
    try:
        login = accounts.credentials(store)
    finally:
        store.close()
    rig.refresh_broker(probe=login)  # before the gateway runs: the probe takes its client id
    gateway = GatewayProcess(rig, port or free_port(), rig.workdir / "jtt808",
                             rig.workdir / "jtt808.log", answer_timeout_s)
    gateway.start()
    return gateway


def add_terminal(rig: Rig, phone: str) -> str:
    """Provision the terminal with SIM number ``phone``; return its device id. The
    broker's files are regenerated with it (the gateway may then publish for it)."""
    device_id = terminal_device_id(phone)
    rig.provision(device_id, kind="gps")
    return device_id
