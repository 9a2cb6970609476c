"""`portwatch broker config` as printed: a real Mosquitto started as root reads its files,
at start and after the files are rewritten and it is reloaded.

Real parts: the `portwatch` command in a child process, Mosquitto started as root with the
printed command (so it switches to user ``mosquitto`` before reading passwd and acl, as
Debian's service does), reloaded with the printed command, and paho-mqtt clients holding
the logins. Before the fix the rewritten files were root's, mode 0600, and after the
SIGHUP Mosquitto refused every client ("Unable to open pwfile").
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller import broker_auth, registry
from controller.storage import open_store
from delivery import publish
from protocols import topics
from tools.broker import login_accepted, paho_client
from tools.procs import free_port, port_open, stop_process, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="needs root: Mosquitto switches to user mosquitto only when started as root, "
           "and that switch is what this test is about")

REPO = Path(__file__).resolve().parents[1]
SITE = "cfg-site"


def _portwatch(*args: str) -> list[str]:
    r = subprocess.run([sys.executable, "-m", "tools.cli", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"portwatch {' '.join(args)}:\n{r.stdout}{r.stderr}"
    return r.stdout.splitlines()


def _command_after(lines: list[str], heading: str) -> str:
    """The command printed on the line after ``heading``."""
    i = next(i for i, line in enumerate(lines) if line.startswith(heading))
    return lines[i + 1].strip()


class Subscriber:
    """A paho client that records what it receives and whether it was ever dropped."""

    def __init__(self, port: int, login: tuple[str, str], topic_filter: str, *,
                 ca: Path, clean_session: bool = True) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self._lock = threading.Lock()
        subacks: list[int] = []
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id="hil-cfg-controller",
                             clean_session=clean_session, protocol=paho.MQTTv311)
        self.c.tls_set(ca_certs=str(ca))
        self.c.username_pw_set(*login)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda _c, _u, mid, _rc, _p: subacks.append(mid)
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        _, mid = self.c.subscribe(topic_filter, qos=1)
        wait_until(lambda: mid in subacks, 5, what=f"SUBACK for {topic_filter}")

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1

    def got(self, topic: str, payload: bytes) -> bool:
        with self._lock:
            return (topic, payload) in self.received

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1])


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A directory user mosquitto can reach (pytest's tmp_path sits under a 0700 one)."""
    top = Path(tempfile.mkdtemp(prefix="pw-broker-config-"))
    top.chmod(0o755)
    try:
        yield top / "broker"
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_rewritten_config_and_reload_keep_every_login_working(
        tmp_path: Path, broker_dir: Path) -> None:
    db = tmp_path / "pw.db"
    dev1 = registry.provision(open_store(db, create=True), device_id="wb-1", site=SITE,
                              kind="weighbridge")
    login1 = ("wb-1", dev1["mqtt_password"])
    port = free_port()
    config_args = ("broker", "config", "--out", str(broker_dir), "--port", str(port),
                   "--bind", "127.0.0.1", "--db", str(db), "--site", SITE)
    printed = _portwatch(*config_args)
    conf = (broker_dir / "mosquitto.conf").read_text()
    assert "user root" not in conf and "user mosquitto" in conf.splitlines()
    start = _command_after(printed, "start the broker")
    reload_cmd = _command_after(printed, "after adding or removing devices")
    assert start == f"mosquitto -c {broker_dir}/mosquitto.conf"

    log_path = tmp_path / "mosquitto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(shlex.split(start), stdout=log, stderr=subprocess.STDOUT)
    subscriber: Subscriber | None = None
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"mosquitto exited: {log_path.read_text()}")
            return port_open(port)

        wait_until(up, 10, what=f"mosquitto on port {port}")
        assert _uid_of(proc.pid) == pwd.getpwnam("mosquitto").pw_uid  # it did drop root
        ctl_login = broker_auth.stored_controller_credentials(open_store(db))
        assert ctl_login is not None
        ca = broker_dir / "tls" / "ca.pem"
        subscriber = Subscriber(port, ctl_login, topics.uplink_filter(SITE, "evt"), ca=ca)
        evt1 = topics.topic(SITE, "wb-1", "evt")
        publish(port, [(evt1, b"before-reload")], login=login1, ca=ca)
        wait_until(lambda: subscriber.got(evt1, b"before-reload"), 10,
                   what="wb-1's event at the controller's subscription")

        dev2 = registry.provision(open_store(db), device_id="wb-2", site=SITE,
                                  kind="weighbridge")
        login2 = ("wb-2", dev2["mqtt_password"])
        assert not login_accepted(port, *login2, ca=ca)  # not in the files the broker holds yet
        reprinted = _portwatch(*config_args)
        assert _command_after(reprinted, "after adding or removing devices") == reload_cmd
        subprocess.run(["sh", "-c", reload_cmd], check=True, timeout=10)

        wait_until(lambda: login_accepted(port, *login2, ca=ca), 10,
                   what=f"wb-2 accepted after the reload (broker log: {log_path})")
        assert login_accepted(port, *login1, ca=ca), log_path.read_text()
        assert not login_accepted(port, "wb-1", dev1["mqtt_password"] + "x", ca=ca)
        assert not login_accepted(port, "wb-1", dev2["mqtt_password"], ca=ca)
        assert not login_accepted(port, None, None, ca=ca)
        # the ACL was read again too: both devices' events still reach the controller
        evt2 = topics.topic(SITE, "wb-2", "evt")
        publish(port, [(evt1, b"after-reload")], login=login1, ca=ca)
        publish(port, [(evt2, b"wb-2-first")], login=login2, ca=ca)
        wait_until(lambda: subscriber.got(evt1, b"after-reload")
                   and subscriber.got(evt2, b"wb-2-first"), 10,
                   what="both devices' events at the controller after the reload")
        assert subscriber.disconnects == 0  # the controller's session outlived the reload
        assert proc.poll() is None
        assert "Error" not in log_path.read_text(), log_path.read_text()
    finally:
        if subscriber is not None:
            subscriber.close()
        stop_process(proc)


def test_generated_config_queues_a_whole_outage_for_the_controller_and_refuses_huge_packets(
        tmp_path: Path, broker_dir: Path) -> None:
    """The site's generated config, started as printed: 3,000 QoS 1 messages sent while the
    controller's persistent session is away all reach it when it returns (Mosquitto's
    default would keep 1,000 and drop the rest silently), and a 1 MiB publish is refused."""
    db = tmp_path / "pw.db"
    dev = registry.provision(open_store(db, create=True), device_id="wb-1", site=SITE,
                             kind="weighbridge")
    login = ("wb-1", dev["mqtt_password"])
    port = free_port()
    printed = _portwatch("broker", "config", "--out", str(broker_dir), "--port", str(port),
                         "--bind", "127.0.0.1", "--db", str(db), "--site", SITE)
    ca = broker_dir / "tls" / "ca.pem"
    log_path = tmp_path / "mosquitto.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(shlex.split(_command_after(printed, "start the broker")),
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_open(port), 10, what=f"mosquitto on port {port}")
        ctl_login = broker_auth.stored_controller_credentials(open_store(db))
        assert ctl_login is not None
        evt = topics.topic(SITE, "wb-1", "evt")
        away = Subscriber(port, ctl_login, topics.uplink_filter(SITE, "evt"), ca=ca,
                          clean_session=False)
        away.close()  # the session stays, and the broker queues for it
        sent = [(evt, b"%05d" % i) for i in range(3000)]
        publish(port, sent, login=login, ca=ca)
        back = Subscriber(port, ctl_login, topics.uplink_filter(SITE, "evt"), ca=ca,
                          clean_session=False)
        try:
            wait_until(lambda: len(back.received) >= 3000, 60,
                       what="every queued message at the returning controller")
            assert [p for _, p in back.received] == [p for _, p in sent]
            assert not _published_before_dropped(port, login, ca, evt, b"x" * (1 << 20))
            publish(port, [(evt, b"after")], login=login, ca=ca)
            wait_until(lambda: back.got(evt, b"after"), 10, what="the message after the big one")
            assert all(len(p) < 1 << 20 for _, p in back.received)
        finally:
            back.close()
        assert not login_accepted(port, *login)  # in clear: the listener speaks TLS only
    finally:
        stop_process(proc)


def _published_before_dropped(port: int, login: tuple[str, str], ca: Path, topic: str,
                              payload: bytes) -> bool:
    """Publish at QoS 1; False once the broker drops the link without a PUBACK."""
    c = paho_client("wb-1", ca=ca, login=login)
    dropped: list[bool] = []
    c.on_disconnect = lambda *_: dropped.append(True)
    c.reconnect_delay_set(60, 60)  # no reconnect (and resend) while we watch
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1)
        wait_until(lambda: dropped or info.is_published(), 10, what="a PUBACK or a drop")
        return bool(info.is_published())
    finally:
        c.loop_stop()
        c.disconnect()
