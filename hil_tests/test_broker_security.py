"""The broker confines each device to its own topics; the controller catches what gets through.

Real parts: Mosquitto with the password file and ACL generated from the registry
(tools/rig.py), the controller process, paho-mqtt clients holding device logins.
A message the broker drops is proven absent by a marker: the same publisher's next,
allowed message (or, across publishers, a message sent after the first one's PUBACK)
reaches the observer, and Mosquitto forwards one client's messages in order.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import paho.mqtt.client as paho

from protocols import envelope, topics
from tools.procs import wait_until
from tools.rig import Rig

TS = 1_764_072_000_000


class Client:
    """A paho client with a login that records what it receives."""

    def __init__(self, rig: Rig, login: tuple[str, str], name: str) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subacks: list[int] = []
        self.c = rig.mqtt_client(f"hil-{name}", login)
        self.c.on_message = self._on_message
        self.c.on_subscribe = lambda _c, _u, mid, _rc, _p: self._subacks.append(mid)
        self.c.connect("127.0.0.1", rig.broker.port)
        self.c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def subscribe(self, topic_filter: str) -> None:
        _, mid = self.c.subscribe(topic_filter, qos=1)
        wait_until(lambda: mid in self._subacks, 5, what=f"SUBACK for {topic_filter}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the PUBACK (the broker has processed it)."""
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def got(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.received if t == topic]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def _sealed(rig: Rig, device_id: str, channel: str, seq: int, kind: str, body: dict[str, Any],
            secret_hex: str, key_id: str = "k1") -> tuple[str, bytes]:
    topic = topics.topic(rig.site, device_id, channel)
    fields = envelope.make(device_id, 1, seq, TS, kind, body)
    return topic, envelope.seal(bytes.fromhex(secret_hex), key_id, topic, fields)


def _weighing(rig: Rig, device_id: str, seq: int, secret_hex: str,
              net: int = 30000) -> tuple[str, bytes]:
    body = {"plate": "辽B77777", "gross_kg": 15000 + net, "tare_kg": 15000, "net_kg": net,
            "division_kg": 20, "stable_ms": 3000, "arrived_ts": TS, "model": "sim"}
    return _sealed(rig, device_id, "evt", seq, "weighing", body, secret_hex)


def _stored(rig: Rig, device_id: str) -> list[int]:
    with sqlite3.connect(rig.db_path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT seq FROM messages WHERE device_id=? ORDER BY seq", [device_id])]


def _rejections(rig: Rig, device_id: str) -> list[str]:
    with sqlite3.connect(rig.db_path) as conn:
        return [r[0] for r in conn.execute(
            "SELECT reason FROM rejections WHERE topic LIKE ?", [f"%/{device_id}/%"])]


def test_device_cannot_publish_under_another_devices_topics(rig: Rig) -> None:
    cfg_a, cfg_b = rig.provision("wb-a"), rig.provision("wb-b")
    controller = Client(rig, rig.observer_account(), "observer-controller")
    victim = Client(rig, rig.credentials("wb-b"), "observer-b")
    intruder = Client(rig, rig.credentials("wb-a"), "wb-a-intruder")
    try:
        controller.subscribe(f"pw/v1/{rig.site}/#")
        victim.subscribe(f"pw/v1/{rig.site}/wb-b/#")
        # A even holds B's HMAC key here: only the broker stands in the way
        evt = _weighing(rig, "wb-b", 1, cfg_b["secret_hex"])
        forged = [evt, _sealed(rig, "wb-b", "state", 9, "death", {}, cfg_b["secret_hex"]),
                  *((topics.topic(rig.site, "wb-b", ch), b"forged-" + ch.encode())
                    for ch in ("tele", "cmdack", "ack", "cmd")),
                  (topics.topic(rig.site, "wb-a", "ack"), b"self-ack")]  # nor ack itself
        for topic, payload in forged:
            intruder.publish(topic, payload)
        marker_topic, marker = _weighing(rig, "wb-a", 1, cfg_a["secret_hex"])
        intruder.publish(marker_topic, marker)
        ctl_marker = b"controller-marker"  # the controller may write B's cmd
        controller.publish(topics.topic(rig.site, "wb-b", "cmd"), ctl_marker)
        wait_until(lambda: controller.got(marker_topic), 10, what="A's own event at the observer")
        wait_until(lambda: victim.got(topics.topic(rig.site, "wb-b", "cmd")), 10,
                   what="the controller's cmd at B")
        wait_until(lambda: _stored(rig, "wb-a") == [1], 20, what="the controller to store A's")
        seen = {p for _, p in controller.received + victim.received}
        assert not seen & {p for _, p in forged}, "a forged message passed the broker"
        assert victim.got(topics.topic(rig.site, "wb-b", "cmd")) == [ctl_marker]
        assert _stored(rig, "wb-b") == [] and _rejections(rig, "wb-b") == []
        assert rig.device("wb-b")["status"] == "never"  # no forged birth or death landed
    finally:
        for c in (controller, victim, intruder):
            c.close()


def test_device_cannot_read_another_devices_ack_or_cmd(rig: Rig) -> None:
    cfg_a, cfg_b = rig.provision("wb-a"), rig.provision("wb-b")
    ack_a, ack_b = (topics.topic(rig.site, d, "ack") for d in ("wb-a", "wb-b"))
    for device_id, cfg in (("wb-a", cfg_a), ("wb-b", cfg_b)):  # the controller acks both
        sender = Client(rig, rig.credentials(device_id), f"{device_id}-sender")
        sender.publish(*_weighing(rig, device_id, 1, cfg["secret_hex"]))
        sender.close()
    wait_until(lambda: rig.device("wb-b")["committed_seq"] == 1, 20, what="B's event committed")
    wait_until(lambda: rig.device("wb-a")["committed_seq"] == 1, 20, what="A's event committed")
    owner = Client(rig, rig.credentials("wb-b"), "wb-b-owner")
    snoop = Client(rig, rig.credentials("wb-a"), "wb-a-snoop")
    controller = Client(rig, rig.observer_account(), "controller-cmd")
    try:
        owner.subscribe(ack_b)
        wait_until(lambda: owner.got(ack_b), 10, what="B's retained ack at B")  # it exists
        for topic_filter in (ack_b, topics.topic(rig.site, "wb-b", "cmd"),
                             f"pw/v1/{rig.site}/+/ack", f"pw/v1/{rig.site}/#", ack_a):
            snoop.subscribe(topic_filter)  # Mosquitto grants it, then filters every delivery
        wait_until(lambda: snoop.got(ack_a), 10, what="A's own retained ack at A")
        controller.publish(topics.topic(rig.site, "wb-b", "cmd"), b"open-barrier-b")
        controller.publish(topics.topic(rig.site, "wb-a", "cmd"), b"marker-a")
        wait_until(lambda: snoop.got(topics.topic(rig.site, "wb-a", "cmd")), 10,
                   what="A's own cmd at A")
        assert {t for t, _ in snoop.received} == {ack_a, topics.topic(rig.site, "wb-a", "cmd")}
        opened, _ = envelope.open_message(
            lambda k: bytes.fromhex(cfg_a["secret_hex"]) if k == "k1" else None, ack_a,
            snoop.got(ack_a)[0])
        assert opened["body"]["upto"] == 1  # A's ack is genuine and A can check it
    finally:
        for c in (owner, snoop, controller):
            c.close()


def test_wrong_password_unknown_user_and_anonymous_are_refused(rig: Rig) -> None:
    rig.provision("wb-a")
    user, password = rig.credentials("wb-a")
    assert rig.login_accepted(user, password)
    assert not rig.login_accepted(user, password + "x")
    assert not rig.login_accepted(user, rig.controller_credentials[1])  # another's password
    assert not rig.login_accepted("wb-ghost", password)
    assert not rig.login_accepted(None, None)
    assert not rig.login_accepted(rig.controller_credentials[0], "guess")
    # the controller's login works (the running controller holds it: a probe would throw
    # it off, since the broker makes the login the client id)
    assert rig.get("/healthz")["broker_connected"]


def test_stolen_login_without_the_hmac_key_is_rejected_as_bad_signature(rig: Rig) -> None:
    cfg_b = rig.provision("wb-b")
    baseline = rig.get("/api/v1/ingest/stats")["rejected_by_reason"].get("bad_signature", 0)
    thief = Client(rig, rig.credentials("wb-b"), "wb-b-thief")  # B's login, not B's key
    try:
        thief.publish(*_weighing(rig, "wb-b", 1, "00" * 32))
        thief.publish(*_weighing(rig, "wb-b", 2, "11" * 32, net=1))
    finally:
        thief.close()

    def counted() -> int:
        return int(rig.get("/api/v1/ingest/stats")["rejected_by_reason"]
                   .get("bad_signature", 0)) - baseline

    wait_until(lambda: counted() >= 2, 20, what="two bad signatures counted")
    assert counted() == 2
    assert _stored(rig, "wb-b") == [] and rig.get("/api/v1/weighings") == []
    assert _rejections(rig, "wb-b") == ["bad_signature", "bad_signature"]
    # the same login with the real key works: the refusal was the signature's
    sender = Client(rig, rig.credentials("wb-b"), "wb-b-real")
    try:
        sender.publish(*_weighing(rig, "wb-b", 1, cfg_b["secret_hex"]))
    finally:
        sender.close()
    wait_until(lambda: _stored(rig, "wb-b") == [1], 20, what="B's genuine event stored")
