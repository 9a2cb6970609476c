"""edge.agent wired from a config, with a recording HAL; runs under pytest and MicroPython.

The agent's own duties: ``emit`` signs and stores before anything is published, says why
when it cannot, and a reboot with a rotated key re-signs what waits in the outbox. The
uplink's delivery rules are tested in test_uplink.py; the whole agent in hil_tests.
"""

import asyncio
import json

from edge.agent import Agent
from edge.outbox import OutboxError
from protocols import envelope, topics
from shared_support import make_tmpdir, rmtree

K1 = "11" * 32
K2 = "22" * 32
T_EVT = topics.topic("dl", "wb1", "evt")
T0 = 1764072000000


class Hal:
    """The HAL names the agent uses; ``lines`` holds what it logged."""

    NAME = "test"

    def __init__(self):
        self.lines = []
        self.ticks = 0

    def now_ms(self):
        return T0 + self.ticks

    def ticks_ms(self):
        return self.ticks

    def ticks_diff(self, a, b):
        return a - b

    async def sleep_ms(self, ms):
        self.ticks += ms

    def mem_free(self):
        return 50000

    def log(self, *parts):
        self.lines.append(" ".join(str(p) for p in parts))

    class Watchdog:
        def feed(self):
            pass


class Client:
    connected = True

    def __init__(self):
        self.events = []

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        if isinstance(topic, bytes):  # as the outbox stores it
            topic = topic.decode()
        if topic == T_EVT:
            self.events.append(payload)
        return 1

    async def wait_ack(self, pid, timeout=None):
        return 0

    async def subscribe(self, topic_filter, qos=1, timeout=None):
        return qos


def _cfg(d, key_id="k1", secret_hex=K1, max_bytes=256 * 1024):
    return {"device_id": "wb1", "site": "dl", "kind": "weighbridge", "key_id": key_id,
            "secret_hex": secret_hex, "data_dir": d, "driver": {"type": "none"},
            "mqtt": {"host": "127.0.0.1", "port": 1883, "user": None, "password": None,
                     "keepalive": 30},
            "window": 8, "resend_after_s": 10, "health_interval_s": 10,
            "outbox_max_bytes": max_bytes}


def _secret(hex_text, key_id):
    key = bytes(int(hex_text[i:i + 2], 16) for i in range(0, len(hex_text), 2))
    return lambda kid: key if kid == key_id else None


def with_dir(test):
    d = make_tmpdir("ag")
    try:
        test(d)
    finally:
        rmtree(d)


def test_agent_emit_stores_a_signed_event_and_wakes_the_uplink():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)
        assert agent.emit("weighing", {"plate": "P1", "gross_kg": 45240}) == 1
        [(seq, topic, wire)] = list(agent.outbox.pending())
        fields, _ = envelope.open_message(_secret(K1, "k1"), T_EVT, wire, False)
        assert (seq, fields["seq"], fields["boot"], fields["ts"]) == (1, 1, 1, T0)
        assert topic == T_EVT.encode()
        assert fields["body"] == {"plate": "P1", "gross_kg": 45240}
        assert agent.uplink.wake.is_set() and agent.stats["events"] == 1
        assert hal.lines == ["wb1 weighing seq 1 P1 gross 45240 kg"]

    with_dir(t)


def test_agent_emit_refused_by_a_full_outbox_returns_0_and_says_so():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d, max_bytes=400), hal)  # room for one event
        assert agent.emit("weighing", {"plate": "P1", "gross_kg": 45240}) == 1
        assert agent.emit("weighing", {"plate": "P2", "gross_kg": 45260}) == 0
        assert agent.stats["outbox_full"] == 1 and agent.outbox.next_seq() == 2
        assert hal.lines[-1] == "wb1 OUTBOX FULL: weighing not stored; controller unreachable?"

    with_dir(t)


def test_agent_names_a_storage_error_in_its_log():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)

        def broken(seq, topic, payload):
            raise OutboxError("write", OSError(5, "Input/output error"))

        agent.outbox.append = broken
        assert agent.emit("alarm", {"alarm": "overload", "state": "raised"}) == 0
        assert agent.stats["emit_errors"] == 1
        assert hal.lines == ["wb1 cannot store alarm: OutboxError: write, I/O error (EIO)"]

    with_dir(t)


def test_agent_rebooted_with_a_rotated_key_reseals_what_waits():
    def t(d):
        old = Agent(_cfg(d), Hal())
        old.emit("weighing", {"plate": "P1", "gross_kg": 45240})
        old.emit("weighing", {"plate": "P2", "gross_kg": 45260})
        stored = [wire for _, _, wire in old.outbox.pending()]
        agent = Agent(_cfg(d, key_id="k2", secret_hex=K2), Hal())  # the rotated config
        assert agent.boot == 2 and agent.birth_body()["next_seq"] == 3
        client = Client()
        asyncio.run(agent.uplink.start(client))
        assert asyncio.run(agent.uplink.send_some(client)) == 2
        assert len(client.events) == len(stored) == 2
        for i in range(2):
            fields, kid = envelope.open_message(_secret(K2, "k2"), T_EVT, client.events[i], False)
            assert kid == "k2" and fields == json.loads(stored[i][:stored[i].rfind(b"\n")])
        assert agent.health_body()["resealed"] == 2

    with_dir(t)


def test_agent_health_body_is_flat_and_counts_the_backlog():
    def t(d):
        agent = Agent(_cfg(d), Hal())
        agent.emit("weighing", {"plate": "P1", "gross_kg": 45240})
        body = agent.health_body()
        assert (body["backlog"], body["acked_seq"], body["next_seq"]) == (1, 0, 2)
        assert body["mem_free"] == 50000 and body["clock_offset_ms"] is None
        assert [k for k in body if isinstance(body[k], (dict, list))] == []

    with_dir(t)
