"""A whole site on this machine: broker, controller, emulated instruments and agents.

Library first: the demo, the benchmark and the hardware-in-the-loop tests all
build their site with this class, each process real (Mosquitto, the controller
under CPython, the firmware under ``micropython``), each startable, killable and
restartable on its own so that faults can be driven from outside.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from controller import auth, broker_auth, registry
from controller.storage import open_store
from tools import tls as site_tls
from tools.broker import MosquittoProcess, login_accepted, paho_client
from tools.emulators.weighbridge import EmulatorProcess, spawn
from tools.firmware import DEFAULT_HEAP, REPO, RESTART_EXIT, start_agent
from tools.procs import ProcessDied, free_port, kill_process, port_open, stop_process, wait_until


class RigError(ProcessDied):
    """A part of the rig did not start; the message names the log to read."""


@dataclass
class Agent:
    """One device: its config file, its emulated instrument, its firmware process."""

    device_id: str
    config_path: Path
    log_path: Path
    emulator: EmulatorProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0  # times it exited with RESTART_EXIT and was started again

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Rig:
    """Start and stop the processes of one site under ``workdir``.

    The broker runs with the password file and ACL generated from the registry
    (``secure_broker=False``: anonymous and unrestricted); every device provisioned
    through the rig gets its login and ACL by a regeneration and a SIGHUP.

    MQTT runs over TLS as at a site (``tls=False``: in clear, for a test that must see
    the bytes): the site CA next to the store signs the broker's certificate for
    127.0.0.1 and localhost, and agents, controller and test clients pin it (``ca``).
    With logins the broker makes each client's id its login, so each client a test
    holds open at once needs its own login (:meth:`test_account`, :meth:`observer_account`).
    """

    def __init__(self, workdir: Path, *, site: str = "hil", api_port: int | None = None,
                 broker_port: int | None = None, heap: str = DEFAULT_HEAP,
                 secure_broker: bool = True, tls: bool = True) -> None:
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.site = site
        self.heap = heap
        self.db_path = self.workdir / "portwatch.db"
        self.secure_broker = secure_broker
        self._test_accounts: dict[str, tuple[str, broker_auth.Account]] = {}
        self._passwords: dict[str, str] = {}
        db = open_store(self.db_path, create=True)
        self.admin_token = auth.create_token(db, name="rig-admin", role="admin")
        self.controller_credentials = broker_auth.controller_credentials(db)
        db.close()
        files = self._write_broker_files() if secure_broker else (None, None)
        broker_tls = None
        self.ca: Path | None = None  # the site CA's certificate, when MQTT runs over TLS
        if tls:
            broker_tls, _ = site_tls.broker_tls(site_tls.ca_dir_for(self.db_path),
                                                self.workdir / "broker" / "tls",
                                                site_tls.DEMO_HOSTS, site=site)
            self.ca = broker_tls.ca
        self.broker = MosquittoProcess(port=broker_port or free_port(),
                                       workdir=self.workdir / "broker", password_file=files[0],
                                       acl_file=files[1], tls=broker_tls)
        self.api_port = api_port or free_port()
        self.controller: subprocess.Popen[bytes] | None = None
        self.controller_log = self.workdir / "controller.log"
        self.agents: dict[str, Agent] = {}

    # -- broker and controller ------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_controller(self, timeout: float = 20.0) -> None:
        """Start the controller process and wait until its API answers."""
        cmd = [sys.executable, "-m", "tools.cli", "controller", "--db", str(self.db_path),
               "--site", self.site, "--broker", f"127.0.0.1:{self.broker.port}",
               "--api", f"127.0.0.1:{self.api_port}", "--verbose",
               *(["--broker-ca", str(self.ca)] if self.ca else ["--no-broker-tls"])]
        user, password = self.controller_credentials
        env = {**os.environ, "PORTWATCH_BROKER_USER": user, "PORTWATCH_BROKER_PASSWORD": password}
        with open(self.controller_log, "ab") as log:
            self.controller = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                               env=env)
        try:
            wait_until(lambda: self._controller_alive() and port_open(self.api_port), timeout,
                       what="the controller API")
            wait_until(lambda: self.get("/healthz")["broker_connected"], timeout,
                       what="the controller to connect to the broker")
        except AssertionError as exc:
            raise RigError(f"{exc}; see {self.controller_log}") from exc

    def _controller_alive(self) -> bool:
        if self.controller is None or self.controller.poll() is not None:
            raise RigError(f"controller exited; see {self.controller_log}")
        return True

    def kill_controller(self) -> None:
        """SIGKILL the controller, as a crash would."""
        kill_process(self.controller)
        self.controller = None

    def stop_controller(self) -> None:
        stop_process(self.controller)
        self.controller = None

    # -- broker logins ----------------------------------------------------------------

    def _write_broker_files(self) -> tuple[Path, Path]:
        db = open_store(self.db_path)
        try:
            return broker_auth.write_files(
                db, site=self.site, out_dir=self.workdir / "broker",
                extra=[account for _, account in self._test_accounts.values()])
        finally:
            db.close()

    def refresh_broker(self, *, probe: tuple[str, str] | None = None) -> None:
        """Regenerate the password file and ACL, SIGHUP the broker, wait for ``probe`` to log in.

        The reload is asynchronous: a login that works only after it (``probe``) proves
        the broker has read both files (it reads them in the same pass).
        """
        if not self.secure_broker:
            return
        self._write_broker_files()
        if self.broker.proc is None:
            return  # read at start
        self.broker.reload()
        if probe is not None:
            user, password = probe
            wait_until(lambda: self.login_accepted(user, password), 10,
                       what=f"the broker to accept {user!r} after its reload")

    def login_accepted(self, user: str | None, password: str | None) -> bool:
        """True when the rig's broker accepts this login (over TLS when the rig uses it).

        The probe connects under the login's client id: it throws off a client connected
        with the same login (never probe the controller's or a running agent's).
        """
        return login_accepted(self.broker.port, user, password, ca=self.ca)

    def credentials(self, device_id: str) -> tuple[str, str]:
        """The broker (user, password) of a device provisioned by this rig."""
        return device_id, self._passwords[device_id]

    def test_account(self, user: str = "hil-tester") -> tuple[str, str]:
        """A broker login for tests that may read and write anywhere under this site.

        Created on first call (never in the demo), for tests that must put messages a
        device could not send (another device's topics, unknown devices) before the
        controller.
        """
        if user not in self._test_accounts:
            password = secrets.token_urlsafe(16)
            rules = (f"topic readwrite pw/v1/{self.site}/#",)
            self._test_accounts[user] = (password, broker_auth.Account(
                user, registry.mosquitto_hash(password), rules))
            self.refresh_broker(probe=(user, password))
        return user, self._test_accounts[user][0]

    def observer_account(self, user: str = "hil-observer") -> tuple[str, str]:
        """A broker login with the controller's rights (reads every device's uplink, writes
        every downlink), for a test client that stands beside the running controller: the
        controller's own login would throw the controller off the broker."""
        if user not in self._test_accounts:
            password = secrets.token_urlsafe(16)
            self._test_accounts[user] = (password, broker_auth.Account(
                user, registry.mosquitto_hash(password), broker_auth.controller_rules(self.site)))
            self.refresh_broker(probe=(user, password))
        return user, self._test_accounts[user][0]

    def watch_account(self, user: str = "hil-watch") -> tuple[str, str]:
        """A broker login that may only read this site's topics (the demo's mosquitto_sub)."""
        if user not in self._test_accounts:
            password = secrets.token_urlsafe(16)
            self._test_accounts[user] = (password, broker_auth.Account(
                user, registry.mosquitto_hash(password), (f"topic read pw/v1/{self.site}/#",)))
            self.refresh_broker(probe=(user, password))
        return user, self._test_accounts[user][0]

    def mqtt_client(self, client_id: str, login: tuple[str, str] | None = None) -> Any:
        """A paho client for the rig's broker (TLS pinned to the site CA when on); call
        ``client.connect("127.0.0.1", rig.broker.port)``."""
        return paho_client(client_id, ca=self.ca, login=login)
    # -- devices ----------------------------------------------------------------------

    def provision(self, device_id: str, *, kind: str = "weighbridge",
                  driver: dict[str, Any] | None = None) -> dict[str, Any]:
        """Register a device, give it its broker login and ACL; return its config."""
        db = open_store(self.db_path)
        try:
            row = registry.provision(db, device_id=device_id, site=self.site, kind=kind,
                                     driver=driver)
        finally:
            db.close()
        self._passwords[device_id] = row["mqtt_password"]
        self.refresh_broker(probe=(device_id, row["mqtt_password"]))
        ca = None if self.ca is None else site_tls.ca_der(self.ca)
        return registry.device_config(row, mqtt_password=row["mqtt_password"],
                                      broker_host="127.0.0.1", broker_port=self.broker.port,
                                      data_dir=str(self.workdir / device_id), tls_ca=ca)

    def add_weighbridge(self, device_id: str, *, map_name: str = "portwatch-sim",
                        emulator_args: tuple[str, ...] = (), stable_s: float = 0.5,
                        poll_ms: int = 100, health_interval_s: int = 2,
                        extra: dict[str, Any] | None = None) -> Agent:
        """Provision a weighbridge, start its emulator, write its config (agent not started)."""
        emulator = spawn("--map", map_name, *emulator_args)
        driver = {"type": "weighbridge", "map": map_name, "host": "127.0.0.1",
                  "port": emulator.modbus_port, "stable_s": stable_s, "poll_ms": poll_ms,
                  "timeout_ms": 500}
        cfg = self.provision(device_id, kind="weighbridge", driver=driver)
        cfg["health_interval_s"] = health_interval_s
        cfg["mqtt"]["keepalive"] = 10
        cfg.update(extra or {})
        agent = Agent(device_id, self.workdir / f"{device_id}.json",
                      self.workdir / f"{device_id}.log", emulator, None, cfg)
        self.write_config(agent)
        self.agents[device_id] = agent
        return agent

    def add_tracker(self, device_id: str, *, source: str, health_interval_s: int = 2,
                    driver: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Agent:
        """Provision a GPS tracker (kind gps, driver tracker) reading NMEA from ``source``
        (``tcp:<host>:<port>``: the caller serves the stream, e.g. tools/gps_emulator.py's
        NmeaServer or a test's own); write its config (agent not started)."""
        settings = {"type": "tracker", "source": source, **(driver or {})}
        cfg = self.provision(device_id, kind="gps", driver=settings)
        cfg["health_interval_s"] = health_interval_s
        cfg["mqtt"]["keepalive"] = 10
        cfg.update(extra or {})
        agent = Agent(device_id, self.workdir / f"{device_id}.json",
                      self.workdir / f"{device_id}.log", None, None, cfg)
        self.write_config(agent)
        self.agents[device_id] = agent
        return agent

    def write_config(self, agent: Agent) -> None:
        import json

        agent.config_path.write_text(json.dumps(agent.config, ensure_ascii=False, indent=1))
        agent.config_path.chmod(0o600)

    def start_agent(self, device_id: str) -> Agent:
        """Start the firmware; started again whenever it exits with RESTART_EXIT (a restart
        command), as `portwatch agent` does, until it is killed or exits otherwise."""
        agent = self.agents[device_id]
        agent.proc = start_agent(agent.config_path, log_path=agent.log_path, heap=self.heap)
        threading.Thread(target=self._restart_on_request, args=(agent, agent.proc),
                         name=f"restart-{device_id}", daemon=True).start()
        return agent

    def _restart_on_request(self, agent: Agent, proc: subprocess.Popen[bytes]) -> None:
        while proc.wait() == RESTART_EXIT and agent.proc is proc:
            proc = start_agent(agent.config_path, log_path=agent.log_path, heap=self.heap)
            agent.proc = proc
            agent.restarts += 1

    def kill_agent(self, device_id: str) -> None:
        """SIGKILL the firmware: a power cut."""
        agent = self.agents[device_id]
        kill_process(agent.proc)
        agent.proc = None

    # -- the API ----------------------------------------------------------------------

    def get(self, path: str, *, token: str | None = None, **params: Any) -> Any:
        """GET one API path as admin (or with ``token``); raise on HTTP errors."""
        headers = {"Authorization": f"Bearer {token or self.admin_token}"}
        r = httpx.get(self.api_url + path, params=params, headers=headers, timeout=10)
        r.raise_for_status()
        return r.json()

    def device(self, device_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v1/devices/{device_id}")
        return result

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Rig:
        self.broker.start()
        self.start_controller()
        return self

    def stop(self) -> None:
        for device_id in list(self.agents):
            self.kill_agent(device_id)
            emu = self.agents[device_id].emulator
            if emu is not None:
                emu.stop()
        self.stop_controller()
        self.broker.stop()

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
