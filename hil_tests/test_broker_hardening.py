"""What a stolen device login can no longer do at the broker, and MQTT over TLS end to end.

Real parts: Mosquitto with the generated password file, ACL and TLS listener (tools/rig.py),
the controller process, agents under ``micropython -X heapsize=96K`` and paho-mqtt clients
holding device logins.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as paho

from controller.storage import open_store, views
from delivery import FAST, send_trucks, start_weighbridge, wait_weighings
from protocols import topics
from protocols.envelope import MAX_WIRE_BYTES
from tools.broker import MAX_PACKET_BYTES, MosquittoProcess, login_accepted, paho_client
from tools.firmware import REPO
from tools.netem import LinkProxy
from tools.procs import free_port, stop_process, wait_until
from tools.rig import Rig
from tools.tls import DEMO_HOSTS, broker_tls, ca_der


class Recorder:
    """A paho client that records what it receives and how often it was thrown off."""

    def __init__(self, rig: Rig, login: tuple[str, str], client_id: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.disconnects = 0
        self._lock = threading.Lock()
        self._subacks: list[int] = []
        self.c = rig.mqtt_client(client_id, login)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda _c, _u, mid, _rc, _p: self._subacks.append(mid)
        self.c.on_disconnect = self._on_disconnect
        self.c.connect("127.0.0.1", rig.broker.port)
        self.c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def _on_disconnect(self, *_: Any) -> None:
        self.disconnects += 1

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.c.subscribe(topic_filter, qos=1)
        wait_until(lambda: mid in self._subacks, 5, what=f"SUBACK for {topic_filter}")

    def publish(self, topic: str, payload: bytes) -> paho.MQTTMessageInfo:
        info: paho.MQTTMessageInfo = self.c.publish(topic, payload, qos=1)
        return info

    def sizes(self, topic: str) -> list[int]:
        with self._lock:
            return [len(p) for t, p in self.received if t == topic]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _grab(rig: Rig, login: tuple[str, str], client_id: str) -> paho.Client:
    """Connect as ``client_id`` with ``login`` and hold the socket open without a loop
    thread (so paho never reconnects by itself): what an attacker's takeover attempt is."""
    c: paho.Client = rig.mqtt_client(client_id, login)
    acked: list[bool] = []
    c.on_connect = lambda _c, _u, _f, rc, _p: acked.append(not rc.is_failure)
    c.connect("127.0.0.1", rig.broker.port, keepalive=60)
    deadline = time.monotonic() + 5
    while not acked and time.monotonic() < deadline:
        c.loop(timeout=0.05)
    assert acked == [True], "the broker refused the attacker's login itself"
    return c


def _uplink_sessions(rig: Rig, device_id: str) -> int:
    return rig.agents[device_id].log_text().count("uplink connected to")


def test_device_login_cannot_throw_off_the_controller_or_another_device(rig: Rig) -> None:
    """With wb-a's login, an attacker connects every half second as the controller's client
    id and as wb-b's: neither is thrown off and wb-b's weighings meanwhile are stored."""
    rig.provision("wb-a")
    login_a = rig.credentials("wb-a")
    agent_b = start_weighbridge(rig, "wb-b")
    store = open_store(rig.db_path)
    controller_id = f"portwatch-{rig.site}-{views.store_id(store)}"
    store.close()
    assert rig.get("/api/v1/ingest/stats")["live"]["connects"] == 1
    assert _uplink_sessions(rig, "wb-b") == 1
    send_trucks(agent_b, 0, 2)  # weighed while the attack goes on
    held = []
    try:
        for i in range(12):  # 6 s, alternating targets, one attempt every half second
            due = time.monotonic() + 0.5
            held.append(_grab(rig, login_a, controller_id if i % 2 == 0 else "wb-b"))
            wait_until(lambda due=due: time.monotonic() >= due, 2,  # type: ignore[misc]
                       what="the next half second", interval=0.01)
        wait_weighings(rig, "wb-b", 2, timeout=60)
        assert rig.get("/api/v1/ingest/stats")["live"]["connects"] == 1
        assert rig.get("/healthz")["broker_connected"] is True
        assert _uplink_sessions(rig, "wb-b") == 1, agent_b.log_text()[-2000:]
        log = rig.broker.log_path.read_text()
        assert f"Client {controller_id} already connected" not in log
        assert "Client wb-b already connected" not in log
        assert "Client wb-a already connected" in log  # the attacker only ousted himself
    finally:
        for c in held:
            c.disconnect()


def test_oversized_publish_is_refused_by_the_broker_and_never_reaches_the_controller(
        rig: Rig) -> None:
    """A device's 1 MiB publish ends its own link at the broker; the largest message the
    protocol allows (16 KiB) still passes, and so does everything after."""
    rig.provision("wb-a")
    evt = topics.topic(rig.site, "wb-a", "evt")
    observer = Recorder(rig, rig.observer_account(), "hil-observer")
    flooder = Recorder(rig, rig.credentials("wb-a"), "wb-a")
    try:
        observer.subscribe(topics.uplink_filter(rig.site, "evt"))
        flooder.publish(evt, b"x" * (1 << 20))
        wait_until(lambda: flooder.disconnects >= 1, 10, what="the broker to drop the flooder")
        flooder.close()
        sender = Recorder(rig, rig.credentials("wb-a"), "wb-a")
        try:
            sender.publish(evt, b"y" * MAX_WIRE_BYTES).wait_for_publish(5)
            sender.publish(evt, b"marker").wait_for_publish(5)
        finally:
            sender.close()
        wait_until(lambda: 6 in observer.sizes(evt), 10, what="the marker at the observer")
        assert observer.sizes(evt) == [MAX_WIRE_BYTES, 6]  # the 1 MiB one never came
        wait_until(lambda: sum(rig.get("/api/v1/ingest/stats")["rejected_by_reason"].values())
                   >= 2, 10, what="the controller to refuse the two unsigned messages")
        rejected = rig.get("/api/v1/ingest/stats")["rejected_by_reason"]
        assert "too_large" not in rejected, rejected  # the 1 MiB one never reached it
        assert sum(rejected.values()) == 2, rejected
        assert f"max_packet_size {MAX_PACKET_BYTES}" in rig.broker.config_path.read_text()
    finally:
        observer.close()


def test_mqtt_runs_over_tls_end_to_end_and_nothing_crosses_in_clear(rig: Rig) -> None:
    """Agent -> broker through a tap that records every byte: the weighing is stored, and
    neither the plate, nor the device's password, nor an MQTT CONNECT is readable on the
    path; the broker has no clear MQTT port."""
    assert rig.ca is not None
    proxy = LinkProxy(target_port=rig.broker.port, record=True).start()
    try:
        agent = rig.add_weighbridge("wb-tls", emulator_args=FAST, stable_s=0.4, poll_ms=50)
        agent.config["mqtt"]["port"] = proxy.port
        rig.write_config(agent)
        assert agent.config["mqtt"]["tls"] is True and agent.config["mqtt"]["tls_ca_hex"]
        rig.start_agent("wb-tls")
        wait_until(lambda: rig.device("wb-tls")["status"] == "online", 30, what="wb-tls online")
        assert agent.emulator is not None
        agent.emulator.client.truck("辽B66666", 15000, 31000)
        wait_weighings(rig, "wb-tls", 1)
        seen = bytes(proxy.seen or b"")
        assert seen[:1] == b"\x16"  # a TLS handshake record opens the link
        password = agent.config["mqtt"]["password"].encode()
        for secret in ("辽B66666".encode(), b"31000", password, b"MQTT", b"wb-tls/evt"):
            assert secret not in seen, secret
        # the broker's port speaks TLS only: a clear MQTT login gets no CONNACK
        assert not login_accepted(rig.broker.port, *rig.credentials("wb-tls"))
    finally:
        proxy.stop()


def test_agent_refuses_a_broker_not_signed_by_its_pinned_ca(rig: Rig, tmp_path: Any) -> None:
    """An impostor broker with a certificate from another CA, for the same address: the
    agent never logs in to it (its password never reaches it) and says why."""
    other = broker_tls(tmp_path / "other-ca", tmp_path / "impostor-tls", DEMO_HOSTS,
                       site="impostor")[0]
    impostor = MosquittoProcess(port=free_port(), workdir=tmp_path / "impostor", tls=other)
    impostor.start()
    try:
        agent = rig.add_weighbridge("wb-pin")
        agent.config["mqtt"]["port"] = impostor.port
        rig.write_config(agent)
        rig.start_agent("wb-pin")
        wait_until(lambda: "uplink down" in agent.log_text(), 30, what="the agent's refusal")
        line = next(ln for ln in agent.log_text().splitlines() if "uplink down" in ln)
        assert "The certificate is not correctly signed by the trusted CA" in line, line
        assert "New client connected" not in impostor.log_path.read_text()
        assert rig.device("wb-pin")["status"] == "never"
    finally:
        impostor.stop()


def test_controller_refuses_a_broker_not_signed_by_the_site_ca(rig: Rig, tmp_path: Any) -> None:
    """`portwatch controller` pointed at an impostor broker (another CA's certificate for
    the same address): it never logs in, says why and what to do, and keeps retrying."""
    other = broker_tls(tmp_path / "other-ca", tmp_path / "impostor-tls", DEMO_HOSTS,
                       site="impostor")[0]
    impostor = MosquittoProcess(port=free_port(), workdir=tmp_path / "impostor", tls=other)
    impostor.start()
    err = tmp_path / "controller.stderr"
    user, password = rig.controller_credentials
    cmd = [sys.executable, "-m", "tools.cli", "controller", "--db", str(tmp_path / "pw.db"),
           "--site", rig.site, "--broker", f"127.0.0.1:{impostor.port}",
           "--broker-ca", str(rig.ca), "--api", f"127.0.0.1:{free_port()}",
           "--broker-user", user, "--broker-password", password]
    with open(err, "wb") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=f,
                                stdin=subprocess.DEVNULL)
    try:
        def refusals() -> list[str]:
            return [ln for ln in err.read_text(errors="replace").splitlines()
                    if "does not chain to the site CA" in ln]

        lines = wait_until(lambda: len(refusals()) >= 2 and refusals(), 20,
                           what="two certificate refusals (it keeps trying)")
        assert "--tls-host 127.0.0.1" in lines[0] and "CERTIFICATE_VERIFY_FAILED" in lines[0]
        assert proc.poll() is None and "Traceback" not in err.read_text()
        assert "New client connected" not in impostor.log_path.read_text()
    finally:
        stop_process(proc)
        impostor.stop()


def test_firmware_mqtt_client_under_cpython_speaks_tls_and_refuses_another_ca(
        rig: Rig, tmp_path: Any) -> None:
    """The same edge.net code on CPython (its ssl behind MicroPython's socket manners):
    a QoS 1 publish over TLS reaches the broker; a context pinning another CA never logs in."""
    import asyncio

    from edge.net import sock
    from edge.net.mqtt import ConnectionLost, MQTTClient

    assert rig.ca is not None
    rig.provision("wb-py")
    user, password = rig.credentials("wb-py")
    observer = Recorder(rig, rig.observer_account(), "hil-observer")
    other = broker_tls(tmp_path / "other-ca", tmp_path / "other-tls", DEMO_HOSTS, site="x")[0]

    async def run() -> str:  # edge code is untyped (MicroPython): checked by running it
        good = MQTTClient(user, "127.0.0.1", rig.broker.port, user=user, password=password,
                          tls=sock.context(ca_der(rig.ca)))
        await good.connect()
        await good.publish(topics.topic(rig.site, "wb-py", "evt"), b"over-tls", qos=1)
        await good.disconnect()
        bad = MQTTClient(user, "127.0.0.1", rig.broker.port, user=user, password=password,
                         tls=sock.context(ca_der(other.ca)))
        try:
            await bad.connect()
        except ConnectionLost as exc:
            return str(exc)
        return "connected"

    try:
        observer.subscribe(topics.uplink_filter(rig.site, "evt"))
        refusal = asyncio.run(run())
        assert "CERTIFICATE_VERIFY_FAILED" in refusal, refusal
        wait_until(lambda: observer.sizes(topics.topic(rig.site, "wb-py", "evt")) == [8], 10,
                   what="the CPython client's publish at the observer")
    finally:
        observer.close()


def test_renewed_broker_certificate_is_taken_on_reload_with_the_pinned_ca_unchanged(
        tmp_path: Any) -> None:
    """The renewal story: a certificate that does not name the address clients dial is
    refused; issued again for it (same site CA) and the broker reloaded (SIGHUP), clients
    pinning the unchanged CA get in, and a connection opened before the reload stays."""
    ca_dir, tls_dir = tmp_path / "ca", tmp_path / "tls"
    first, _ = broker_tls(ca_dir, tls_dir, ("localhost",), site="renew")
    broker = MosquittoProcess(port=free_port(), workdir=tmp_path / "broker", tls=first)
    with broker:
        ca = ca_dir / "ca.pem"
        assert login_accepted(broker.port, None, None, host="localhost", ca=ca)
        assert not login_accepted(broker.port, None, None, ca=ca)  # 127.0.0.1: not named
        held = paho_client("held-over-reload", ca=ca)
        dropped: list[bool] = []
        held.on_disconnect = lambda *_: dropped.append(True)
        held.connect("localhost", broker.port)
        held.loop_start()
        try:
            _, new = broker_tls(ca_dir, tls_dir, ("localhost", "127.0.0.1"), site="renew")
            assert new
            broker.reload()
            wait_until(lambda: login_accepted(broker.port, None, None, ca=ca), 10,
                       what="the renewed certificate after the reload")
            assert held.is_connected() and not dropped
        finally:
            held.loop_stop()
            held.disconnect()
