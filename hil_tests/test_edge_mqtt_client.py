"""The firmware's MQTT client (edge.net.mqtt) under the real micropython, against Mosquitto.

Each test starts its own broker on a free port and runs hil_tests/mpy/mqtt_probe.py in
``micropython -X heapsize=96K``; a paho-mqtt client on the CPython side checks the
exact bytes the firmware sent and feeds it messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from delivery import publish
from tools.broker import MosquittoProcess
from tools.firmware import REPO, build_firmware, micropython_binary
from tools.procs import WaitTimeout, free_port, stop_process, wait_until

PROBE = REPO / "hil_tests" / "mpy" / "mqtt_probe.py"


class Probe:
    """The probe script as a child process; its stdout lines collected by a thread."""

    def __init__(self, *args: str, interpreter: str = "micropython") -> None:
        env = dict(os.environ)
        if interpreter == "micropython":
            # the firmware image (.mpy, as on the board); MICROPYPATH replaces the
            # default path, so keep .frozen, where asyncio lives
            env["MICROPYPATH"] = f"{build_firmware()}:.frozen"
            argv = [micropython_binary(), "-X", "heapsize=96K", str(PROBE), *args]
        else:
            env["PYTHONPATH"] = str(REPO)
            argv = [sys.executable, str(PROBE), *args]
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def wait_line(self, prefix: str, timeout: float = 10.0, after: int = 0) -> tuple[float, str]:
        """Wait for the first line starting with ``prefix`` among lines[after:]."""

        def find() -> tuple[float, str] | None:
            ended = not self._pump_thread.is_alive()  # before scanning: no line missed
            for stamp, line in self.lines[after:]:
                if line.startswith(prefix):
                    return stamp, line
            if ended:
                raise EOFError(f"probe exited with {self.proc.wait()}")
            return None

        try:
            return wait_until(find, timeout=timeout, what=f"{prefix!r} from the probe")
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}\n--- probe output ---\n{self.output()}") from None

    def stop(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]


class Watcher:
    """A paho-mqtt subscriber to pw/t/<cid>/# recording (topic, payload, retain)."""

    def __init__(self, port: int, cid: str, name: str = "watcher") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{cid}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = lambda c, u, m: self.messages.append(
            (m.topic, m.payload, bool(m.retain)))
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"pw/t/{cid}/#", 1)
        self.client.connect("127.0.0.1", port, keepalive=60)
        self.client.loop_start()
        assert self.subscribed.wait(10), "watcher did not get its SUBACK"

    def payloads(self, topic: str) -> list[bytes]:
        return [p for t, p, _ in self.messages if t == topic]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(port: int, topic: str) -> bytes:
    """The retained payload of ``topic``, read by a fresh subscriber."""
    got: list[bytes] = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_message = lambda cl, u, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.subscribe(topic, 1)
    c.loop_start()
    try:
        return wait_until(lambda: got[0] if got else None, timeout=10,
                          what=f"retained message on {topic}")
    finally:
        c.loop_stop()
        c.disconnect()


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator:
    started: list[MosquittoProcess] = []

    def make(password_file: Path | None = None) -> MosquittoProcess:
        b = MosquittoProcess(port=free_port(), workdir=tmp_path / f"broker{len(started)}",
                             password_file=password_file)
        b.start()
        started.append(b)
        return b

    yield make
    for b in started:
        b.resume()
        b.stop()


@pytest.fixture
def broker(broker_factory) -> MosquittoProcess:
    return broker_factory()


def broker_log(b: MosquittoProcess) -> str:
    return b.log_path.read_text(errors="replace")


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_mqtt_client_roundtrip_exact_bytes(broker: MosquittoProcess, interpreter: str) -> None:
    cid = f"mp-basic-{interpreter}"
    base = f"pw/t/{cid}/"
    watch = Watcher(broker.port, cid)
    watch.publish(base + "cmd", b"retained-cmd", retain=True)
    probe = Probe("basic", "127.0.0.1", str(broker.port), cid, interpreter=interpreter)
    try:
        probe.wait_line("READY", timeout=20)
        assert probe.wait_line("CONNECTED")[1] == "CONNECTED 0"
        assert probe.wait_line("SUBSCRIBED")[1] == "SUBSCRIBED 1 0"  # granted QoS 1 and 0
        assert probe.wait_line("BURST")[1] == "BURST 40 0"  # 40 PUBACKs, all return code 0
        big = bytes(range(256)) * 15 + b"\x00\xff" * 128  # 4,096 bytes: at max_payload
        oversize = b"x" * 5000  # over max_payload: skipped, acknowledged, counted
        watch.publish(base + "cmd", big)
        watch.publish(base + "cmd", oversize)
        watch.publish(base + "cmd0", b"zero\x00qos0", qos=0)
        watch.publish(base + "cmd", "港".encode())
        watch.publish(base + "cmd", b"stop")
        probe.wait_line("BYE", timeout=20)
        assert probe.proc.wait(10) == 0
    finally:
        probe.stop()

    # What the firmware published, byte for byte and in order.
    assert watch.payloads(base + "q0") == [b"hello-q0"]
    assert watch.payloads(base + "q1") == [bytes(range(256))]
    assert watch.payloads(base + "burst") == [b"%d" % i for i in range(40)]
    assert watch.payloads(base + "echo") == [b"retained-cmd", big, b"zero\x00qos0",
                                             "港".encode()]
    # What it received: the retained flag on the stored message only, the oversized one
    # never delivered, and the link kept after it.
    recv = [line.split() for _, line in probe.lines if line.startswith("RECV")]
    assert [(r[1], int(r[3]), r[4]) for r in recv] == [
        (base + "cmd", 12, "1"), (base + "cmd", 4096, "0"), (base + "cmd0", 9, "0"),
        (base + "cmd", 3, "0"), (base + "cmd", 4, "0")]
    assert recv[1][2] == big[:64].hex()
    # oversize 1, callback errors 0
    assert probe.wait_line("STATS")[1].split()[1:3] == ["1", "0"]
    assert probe.wait_line("BYE")[1] == "BYE 0"

    # DISCONNECT means no will: after the broker logged it, the state is still "online".
    wait_until(lambda: f"Client {cid} disconnected." in broker_log(broker),
               what="the broker to log the clean disconnect")
    assert retained(broker.port, base + "state") == b"online"
    assert b"offline" not in watch.payloads(base + "state")
    watch.close()


def test_mqtt_client_ram_fits_96k_heap(broker: MosquittoProcess) -> None:
    cid = "mp-ram"
    watch = Watcher(broker.port, cid)
    probe = Probe("basic", "127.0.0.1", str(broker.port), cid)
    try:
        probe.wait_line("READY", timeout=20)
        watch.publish(f"pw/t/{cid}/cmd", bytes(4096))
        watch.publish(f"pw/t/{cid}/cmd", b"stop")
        probe.wait_line("BYE", timeout=20)
    finally:
        probe.stop()
        watch.close()
    mem = {line.split()[1]: int(line.split()[3]) for _, line in probe.lines
           if line.startswith("MEM")}
    # measured on the 64-bit unix port (pointers twice an ESP32's), loaded from the .mpy
    # image: ~12.3 KB for the module with the edge and edge.net package inits, edge.net.sock
    # (its non-blocking socket I/O: asyncio's stream and funcs modules, 2.5 KB, are no
    # longer loaded when it connects) and the qstr pool growth it triggers here (the first
    # version: ~20 KB); the client object ~2.2 KB with its in-flight slots
    assert mem["asyncio"] - mem["imported"] < 13 * 1024, mem
    assert mem["running"] - mem["constructed"] < 3072, mem
    # Connected with reader and keepalive tasks, after a 40-message burst and a 4 KB echo,
    # the heap is back where it was: nothing grows with traffic.
    assert mem["constructed"] - mem["after-echo"] < 3072, mem
    assert mem["after-echo"] > 40 * 1024, mem  # room left for the rest of the agent


def test_mqtt_client_will_sent_when_killed(broker: MosquittoProcess) -> None:
    cid = "mp-will"
    base = f"pw/t/{cid}/"
    watch = Watcher(broker.port, cid)
    probe = Probe("will", "127.0.0.1", str(broker.port), cid)
    try:
        probe.wait_line("CONNECTED", timeout=20)
        watch.publish(base + "cmd", b"\x01callback")
        assert probe.wait_line("RECV")[1] == f"RECV {base}cmd 0163616c6c6261636b 9 0"
        assert watch.payloads(base + "state") == [b"online"]
        probe.proc.kill()  # SIGKILL: no DISCONNECT, as on power loss
        probe.proc.wait(10)
        wait_until(lambda: b"offline" in watch.payloads(base + "state"), timeout=10,
                   what="the will on the state topic")
    finally:
        probe.stop()
        watch.close()
    assert watch.payloads(base + "state") == [b"online", b"offline"]
    assert retained(broker.port, base + "state") == b"offline"  # the will was retained


def test_mqtt_client_wrong_password_refused(broker_factory, tmp_path: Path) -> None:
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "dev-7", "s3cret"],
                   check=True, capture_output=True)
    b = broker_factory(password_file=pwfile)
    ok = Probe("auth", "127.0.0.1", str(b.port), "mp-auth", "dev-7", "s3cret")
    bad = Probe("auth", "127.0.0.1", str(b.port), "mp-auth2", "dev-7", "wrong")
    try:
        assert ok.wait_line("CONNECTED", timeout=20)[1] == "CONNECTED"
        line = bad.wait_line("REFUSED", timeout=20)[1]
    finally:
        ok.stop()
        bad.stop()
    # code 5, an MQTTError, not connected, with the reason text
    assert line == "REFUSED 5 True 0 CONNACK refused: not authorized", line


def test_mqtt_client_reconnects_after_broker_restart(broker: MosquittoProcess) -> None:
    cid = "mp-restart"
    probe = Probe("lost", "127.0.0.1", str(broker.port), cid, "30", "2")
    try:
        probe.wait_line("LINKED 0", timeout=20)
        n = len(probe.lines)
        t_stop = time.monotonic()
        broker.stop()
        t_lost, line = probe.wait_line("LOST", timeout=10, after=n)
        # EOF is noticed at once, long before the 45 s keepalive deadline
        assert t_lost - t_stop < 5, line
        assert line.startswith("LOST 0 ")
        probe.wait_line("RETRY ConnectionLost", after=n)  # broker down: connect refused
        broker.start()
        probe.wait_line("LINKED 1", timeout=20, after=n)
        publish(broker.port, [(f"pw/t/{cid}/cmd", b"stop")])
        stats = probe.wait_line("STATS", timeout=20)[1].split()
        probe.wait_line("BYE")
    finally:
        probe.stop()
    assert stats[1] == "1"  # links_lost


def test_mqtt_client_keepalive_detects_frozen_broker(broker: MosquittoProcess) -> None:
    cid = "mp-frozen"
    keepalive = 2
    probe = Probe("lost", "127.0.0.1", str(broker.port), cid, str(keepalive), "1")
    try:
        probe.wait_line("LINKED 0", timeout=20)
        n = len(probe.lines)
        t_pause = time.monotonic()
        broker.pause()  # SIGSTOP: sockets stay open, nothing answers
        t_lost, line = probe.wait_line("LOST", timeout=15, after=n)
        # dead after 1.5 x keepalive without a packet, checked every keepalive/4
        assert keepalive * 0.5 <= t_lost - t_pause <= keepalive * 1.5 + 1.5, line
        assert "nothing from the broker" in line
        # TCP still connects to the frozen broker, but no CONNACK comes within 1 s
        probe.wait_line("RETRY MQTTTimeout", timeout=10, after=n)
        broker.resume()
        probe.wait_line("LINKED 1", timeout=20, after=n)
        publish(broker.port, [(f"pw/t/{cid}/cmd", b"stop")])
        stats = probe.wait_line("STATS", timeout=20)[1].split()
        probe.wait_line("BYE")
    finally:
        probe.stop()
    assert stats[1] == "1"  # links_lost
    assert int(stats[2]) >= 1  # PINGREQs were sent while idle
