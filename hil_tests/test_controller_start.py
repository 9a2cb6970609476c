"""Starting `portwatch controller`: refusals before the broker, client ids, broker trouble.

Real parts: Mosquitto with the generated password file and ACL (tools/rig.py), the rig's
controller process, and further `portwatch controller` processes started here exactly as
an operator would (``python -m tools.cli controller``). Mosquitto's own log
(``connection_messages true``) is the witness of which MQTT clients connected, and as whom.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tools.firmware import REPO
from tools.procs import free_port, port_open, stop_process, wait_until
from tools.rig import Rig

# Mosquitto: "New client connected from 127.0.0.1:40000 as portwatch-hil-ab12 (p2, c0, k15,
# u'portwatch-controller')."
CONNECTED = re.compile(r"New client connected from \S+ as (\S+) \(.*u'([^']*)'\)")


class Controller:
    """One `portwatch controller` process, its stdout and stderr in files."""

    def __init__(self, workdir: Path, name: str, *, db: Path, site: str, broker_port: int,
                 api_port: int, user: str | None = None, password: str | None = None,
                 verbose: bool = False, ca: Path | None = None) -> None:
        self.out = workdir / f"{name}.stdout"
        self.err = workdir / f"{name}.stderr"
        self.api_port = api_port
        cmd = [sys.executable, "-m", "tools.cli", "controller", "--db", str(db),
               "--site", site, "--broker", f"127.0.0.1:{broker_port}",
               "--api", f"127.0.0.1:{api_port}"]
        if user is not None:
            cmd += ["--broker-user", user, "--broker-password", password or ""]
        if verbose:
            cmd.append("--verbose")
        if ca is not None:  # the rig's site CA (another store's would not match its broker)
            cmd += ["--broker-ca", str(ca)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PORTWATCH_")}
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, env=env,
                                         stdin=subprocess.DEVNULL)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def health(self) -> dict[str, object]:
        result: dict[str, object] = httpx.get(
            f"http://127.0.0.1:{self.api_port}/healthz", timeout=5).json()
        return result

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def controllers(tmp_path: Path) -> Iterator[list[Controller]]:
    """Controllers started by a test; each is stopped afterwards, its output shown."""
    started: list[Controller] = []
    try:
        yield started
    finally:
        for c in started:
            c.stop()
            print(f"--- {c.err.name} ---\n{c.stderr()[-3000:]}")


def _connections(rig: Rig) -> list[tuple[str, str]]:
    """(client id, user) of every MQTT connection the broker accepted, in order."""
    return CONNECTED.findall(rig.broker.log_path.read_text(errors="replace"))


def _controller_connections(rig: Rig) -> list[str]:
    user = rig.controller_credentials[0]
    return [cid for cid, u in _connections(rig) if u == user]


def _rig_login(rig: Rig) -> list[str]:
    """The rig controller's client id, once the broker has logged its login."""
    return wait_until(lambda: _controller_connections(rig), 10,
                      what="the rig controller's login in the broker's log")


def _settle_broker_log(rig: Rig) -> None:
    """Wait until a marker login made now is in the broker's log: any connection made
    before it (by a controller that has since exited) is logged by then."""
    before = len(_connections(rig))
    user, password = rig.test_account()
    assert rig.login_accepted(user, password)
    wait_until(lambda: any(u == user for _, u in _connections(rig)[before:]), 10,
               what="the marker login in the broker's log")


def _live(rig: Rig) -> dict[str, object]:
    live: dict[str, object] = rig.get("/api/v1/ingest/stats")["live"]
    return live


def _second(tmp_path: Path, rig: Rig, name: str, db: Path, api_port: int, *,
            verbose: bool = False) -> Controller:
    """Another controller on the rig's broker, with the rig controller's broker login."""
    user, password = rig.controller_credentials
    return Controller(tmp_path, name, db=db, site=rig.site, broker_port=rig.broker.port,
                      api_port=api_port, user=user, password=password, verbose=verbose,
                      ca=rig.ca)


def test_second_controller_on_a_busy_api_port_stops_before_the_broker(
        rig: Rig, tmp_path: Path, controllers: list[Controller]) -> None:
    first_id = _rig_login(rig)
    assert len(first_id) == 1
    for name, db in (("same-store", rig.db_path), ("other-store", tmp_path / "other.db")):
        second = _second(tmp_path, rig, name, db, rig.api_port)
        controllers.append(second)
        started = time.monotonic()
        code = second.wait_exit(timeout=30)
        took = time.monotonic() - started
        err = second.stderr()
        assert code != 0, f"{name}: exited {code}"
        assert took < 15, f"{name}: took {took:.1f} s to give up"
        assert "Traceback" not in err and len(err.strip().splitlines()) < 5, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert f"127.0.0.1:{rig.api_port}" in lines[0] and "already in use" in lines[0], err
        _settle_broker_log(rig)
        # the broker saw one controller login in all, the rig's: the second never connected
        assert _controller_connections(rig) == first_id, name
        assert "already connected, closing old connection" not in \
            rig.broker.log_path.read_text()
        live = _live(rig)
        assert live["connects"] == 1 and live["connected"] is True, (name, live)
    assert rig.controller is not None and rig.controller.poll() is None
    assert rig.get("/healthz")["broker_connected"] is True


def test_second_controller_on_the_same_store_names_the_running_ones_pid(
        rig: Rig, tmp_path: Path, controllers: list[Controller]) -> None:
    _rig_login(rig)
    api_port = free_port()
    second = _second(tmp_path, rig, "same-store", rig.db_path, api_port)
    controllers.append(second)
    code = second.wait_exit(timeout=30)
    err = second.stderr()
    assert code != 0
    assert "Traceback" not in err and len(err.strip().splitlines()) < 5, err
    assert rig.controller is not None
    assert f"another controller (pid {rig.controller.pid}) is serving {rig.db_path}" in err, err
    assert not port_open(api_port)  # it never served its API either
    _settle_broker_log(rig)
    assert len(_controller_connections(rig)) == 1
    assert _live(rig)["connects"] == 1


def test_controllers_on_two_stores_have_two_logins_and_two_client_ids(
        rig: Rig, tmp_path: Path, controllers: list[Controller]) -> None:
    """The broker makes each login its client id (no login can take over another's), so
    a second store's controller has a login of its own, and neither ousts the other."""
    rig_ids = _rig_login(rig)
    assert rig_ids == [rig.controller_credentials[0]]
    other_db = tmp_path / "other.db"
    user, password = rig.observer_account("portwatch-controller-other")
    _settle_broker_log(rig)  # the account's probe login is logged before we count
    before = len(_connections(rig))
    second = Controller(tmp_path, "other-store", db=other_db, site=rig.site,
                        broker_port=rig.broker.port, api_port=free_port(), user=user,
                        password=password, verbose=True, ca=rig.ca)
    controllers.append(second)
    wait_until(lambda: second.health()["broker_connected"], 20,
               what="the second controller connected")
    ids = [*rig_ids, *(cid for cid, u in _connections(rig)[before:] if u == user)]
    assert ids == [rig_ids[0], user], ids
    assert ids[0] != ids[1]
    assert f"as {ids[1]}" in second.stderr()  # the controller says which id it uses
    # both stay connected: neither session was taken over by the other
    assert "already connected, closing old connection" not in rig.broker.log_path.read_text()
    assert _live(rig)["connects"] == 1 and rig.get("/healthz")["broker_connected"] is True
    # a restarted controller comes back under its own id (it resumes its broker session)
    second.stop()
    rig.stop_controller()
    rig.start_controller()
    assert _controller_connections(rig)[1:] == rig_ids


def test_refused_login_is_named_as_such_with_what_to_do(
        rig: Rig, tmp_path: Path, controllers: list[Controller]) -> None:
    user, password = rig.controller_credentials
    c = Controller(tmp_path, "bad-password", db=tmp_path / "other.db", site=rig.site,
                   broker_port=rig.broker.port, api_port=free_port(), user=user,
                   password=password + "-wrong", ca=rig.ca)  # no --verbose: WARNINGs show anyway
    controllers.append(c)

    def refusals() -> list[str]:
        return [line for line in c.stderr().splitlines() if "refused the login" in line]

    lines = wait_until(lambda: len(refusals()) >= 2 and refusals(), 20,
                       what="two refused-login warnings (it keeps trying)")
    line = lines[0]
    assert "WARNING" in line
    assert f"broker 127.0.0.1:{rig.broker.port} refused the login of {user}" in line
    assert "not authorized" in line  # Mosquitto 2 answers a wrong password so (CONNACK 5)
    assert "portwatch broker config" in line and "--broker-password" in line  # what to do
    assert "unreachable" not in c.stderr()
    assert "Traceback" not in c.stderr()
    assert c.proc.poll() is None and c.health() == {"ok": True, "broker_connected": False}


def test_unreachable_broker_is_named_as_such_and_retried(
        tmp_path: Path, controllers: list[Controller]) -> None:
    port = free_port()  # nothing listens there
    c = Controller(tmp_path, "no-broker", db=tmp_path / "pw.db", site="hil", broker_port=port,
                   api_port=free_port())
    controllers.append(c)

    def unreachable() -> list[str]:
        return [line for line in c.stderr().splitlines() if "unreachable" in line]

    lines = wait_until(lambda: len(unreachable()) >= 3 and unreachable(), 20,
                       what="three unreachable-broker warnings")
    assert all(f"broker 127.0.0.1:{port} unreachable" in line and "WARNING" in line
               for line in lines)
    delays = [float(m) for m in re.findall(r"retrying in ([\d.]+) s", "\n".join(lines))]
    assert delays[:3] == [0.2, 0.4, 0.8]  # it backs off
    assert "refused the login" not in c.stderr() and "Traceback" not in c.stderr()
    assert c.proc.poll() is None and c.health()["broker_connected"] is False


def test_reconnect_delay_starts_afresh_after_each_broker_restart(rig: Rig) -> None:
    """The broker is kept down each time until the controller has failed twice (its
    delay has doubled to 0.8 s); once the broker is back, the controller must be in
    within 2 s, and its first retry after each loss is at the 0.2 s minimum again (without
    the reset it would stay at its 1 s cap)."""
    log = rig.controller_log
    for restart in range(3):
        offset = len(log.read_text(errors="replace"))

        def since() -> str:
            return log.read_text(errors="replace")[offset:]  # noqa: B023 - read at once

        rig.broker.stop()
        wait_until(lambda: not rig.get("/healthz")["broker_connected"], 10,
                   what="the controller to see the broker gone")
        wait_until(lambda: since().count("unreachable") >= 2, 15,
                   what="two failed reconnects while the broker is down")
        rig.broker.start()
        up = time.monotonic()
        wait_until(lambda: rig.get("/healthz")["broker_connected"], 10,
                   what="the controller back on the broker", interval=0.01)
        took = time.monotonic() - up
        assert took < 2.0, f"restart {restart + 1}: {took:.2f} s from broker up to connected"
        lost = [line for line in since().splitlines() if "lost the link" in line]
        assert lost and "retrying in 0.2 s" in lost[0], (restart, lost)
    assert _live(rig)["connects"] == 4
