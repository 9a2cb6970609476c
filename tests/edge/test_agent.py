"""edge.agent wired from a config, with a recording HAL; runs under pytest and MicroPython.

The agent's own duties: ``emit`` signs and stores before anything is published, returns
None when it cannot (counted on flash, reported in a signed ``refused`` notice, logged once
per episode), keeps the last of the outbox for weighings, a reboot with a rotated key
re-signs what waits in the outbox, and health goes out as soon as the link is up; the device
key is made at the first boot, never overwritten, signs custody events, and an unreadable
one raises device_key_unreadable while the agent goes on with the HMAC alone. The
uplink's delivery rules are tested in test_uplink.py; the whole agent in hil_tests.
"""

import asyncio
import json
import os
import struct
from binascii import crc32, hexlify

from edge.agent import RESERVE_PART, Agent
from edge.config import ConfigError, check
from edge.outbox import OutboxError
from edge.persist import read_slot, write_slot
from protocols import bodies, envelope, p256, topics
from shared_support import FakeClock, make_tmpdir, raises, read_file, rmtree, write_file

K1 = "11" * 32
K2 = "22" * 32
T_EVT = topics.topic("dl", "wb1", "evt")
T_TELE = topics.topic("dl", "wb1", "tele")
T0 = 1764072000000


class Hal(FakeClock):
    """The HAL names the agent uses; ``lines`` holds what it logged."""

    NAME = "test"

    def __init__(self):
        FakeClock.__init__(self, T0)
        self.lines = []

    async def sleep_ms(self, ms):
        self.ticks += ms
        if self.stop_at is not None and self.ticks >= self.stop_at:
            raise _Stop()
        if self.on_sleep is not None:
            await self.on_sleep()

    stop_at = None  # sleeping past this tick ends a task under test
    on_sleep = None  # called after each sleep: the test's script

    def mem_free(self):
        return 50000

    def log(self, *parts):
        self.lines.append(" ".join(str(p) for p in parts))

    def feed(self):
        pass


class _Stop(Exception):
    pass


class Client:
    connected = True

    def __init__(self):
        self.events = []
        self.tele = []  # the fields of each health sample

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        if not isinstance(topic, str):  # bytes or a view of the uplink's record buffer
            topic = bytes(topic).decode()
        if isinstance(payload, tuple):  # parts, as MQTTClient takes them (health)
            payload = b"".join([bytes(p) for p in payload])
        payload = bytes(payload)  # a view is overwritten by the next record: copy it now
        if topic == T_EVT:
            self.events.append(payload)
        if topic == T_TELE:
            self.tele.append(json.loads(payload[:payload.rfind(b"\n")]))
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
        assert agent.uplink.wake and agent.stats["events"] == 1
        assert hal.lines[1:] == ["wb1 weighing seq 1 P1 gross 45240 kg"]  # [0]: the key

    with_dir(t)


W = {"plate": "P1", "gross_kg": 45240}
A = {"alarm": "overload", "state": "raised"}


def _fill(agent, kind="weighing", body=W):
    """Emit ``kind`` until the outbox refuses one; return how many it stored."""
    n = 0
    while agent.emit(kind, body) is not None:
        n += 1
    return n


def test_agent_emit_refused_by_a_full_outbox_returns_none_logs_once_per_episode():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d, max_bytes=4096), hal)  # two 2 KiB segments
        n = _fill(agent)  # the first refusal ends it
        assert [agent.emit("weighing", W) for _ in range(2)] == [None, None]
        assert agent.stats["outbox_full"] == 3 and agent.outbox.next_seq() == n + 1
        full = [line for line in hal.lines if "OUTBOX FULL" in line]
        assert full == ["wb1 OUTBOX FULL: weighing refused (counted, reported); "
                        "controller unreachable?"]  # once, not once per refusal
        agent.outbox.ack(n)  # frees the first segment
        assert agent.emit("weighing", W) == n + 1
        assert "wb1 outbox takes events again after 3 refused" in hal.lines
        _fill(agent)  # a new episode: logged again
        assert len([line for line in hal.lines if "OUTBOX FULL" in line]) == 2
        assert agent.stats["outbox_full"] == 4
        assert agent.health_body()["outbox_full"] == 4

    with_dir(t)


def test_agent_keeps_the_last_of_the_outbox_for_weighings():
    def t(d):
        bound = 16 * 1024
        agent = Agent(_cfg(d, max_bytes=bound), Hal())
        alarms = _fill(agent, "alarm", A)  # alarms stop short of the reserve...
        held = agent.outbox.backlog()[1]
        assert held <= bound - bound // RESERVE_PART < held + 400
        weighings = _fill(agent)  # ...which weighings may use, up to the bound
        assert weighings >= (bound // RESERVE_PART) // 400 and agent.outbox.backlog()[1] <= bound
        assert agent.refused["kinds"] == {"alarm": 1, "weighing": 1}
        assert agent.refused["reason"] == "outbox_full"
        assert (alarms, agent.stats["outbox_full"]) == (agent.outbox.next_seq() - 1 - weighings, 2)

    with_dir(t)


def _notices(agent):
    """The ``refused`` events in the outbox, as their envelope fields."""
    out = []
    for _, _, wire in agent.outbox.pending(limit=10000):
        fields, _ = envelope.open_message(_secret(K1, "k1"), T_EVT, wire, False)
        if fields["kind"] == "refused":
            out.append(fields)
    return out


def test_agent_refused_counter_survives_a_reboot_then_one_notice_resets_it():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d, max_bytes=4096), hal)
        n = _fill(agent)  # n weighings stored, one refused
        hal.ticks += 5000
        assert agent.emit("alarm", A) is None and agent.emit("weighing", W) is None
        assert agent.health_body()["refused"] == 3
        agent.report()  # no room: the notice waits, the counter stays
        assert agent.refused["count"] == 3 and _notices(agent) == []
        assert "refused" in os.listdir(d)

        hal = Hal()  # power cut and reboot on the same data directory
        agent = Agent(_cfg(d, max_bytes=4096), hal)
        assert agent.boot == 2
        assert agent.refused == {"count": 3, "kinds": {"weighing": 2, "alarm": 1},
                                 "since_ts": T0, "until_ts": T0 + 5000, "reason": "outbox_full"}
        agent.outbox.ack(n)  # the controller committed what waited: room again
        agent.report()
        [notice] = _notices(agent)
        assert (notice["kind"], notice["seq"], notice["boot"]) == ("refused", n + 1, 2)
        assert notice["body"] == {"count": 3, "kinds": {"weighing": 2, "alarm": 1},
                                  "since_ts": T0, "until_ts": T0 + 5000, "reason": "outbox_full"}
        assert bodies.check("evt", "refused", notice["body"]) is None
        assert agent.refused is None and "refused" not in os.listdir(d)
        assert agent.uplink.wake and agent.health_body()["refused"] == 0
        agent.report()  # nothing more to say
        assert len(_notices(agent)) == 1
        assert Agent(_cfg(d, max_bytes=4096), Hal()).refused is None  # reset on flash too

    with_dir(t)


def test_agent_names_a_storage_error_in_its_log_and_counts_it_refused():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)
        real = agent.outbox.append

        def broken(seq, topic, payload, reserve=0):
            raise OutboxError("write", OSError(5, "Input/output error"))

        agent.outbox.append = broken
        assert agent.emit("alarm", A) is None
        assert agent.emit("weighing", W) is None
        assert agent.stats["emit_errors"] == 2 and agent.stats["outbox_full"] == 0
        assert hal.lines[1:] == ["wb1 cannot store alarm: OutboxError: write, I/O error (EIO)",
                                 "wb1 cannot store weighing: OutboxError: write, I/O error (EIO)"]
        assert agent.refused["reason"] == "write_error"
        assert agent.refused["kinds"] == {"alarm": 1, "weighing": 1}
        agent.report()  # the flash still fails: the notice is not stored, the counter stays
        assert agent.refused["count"] == 2
        agent.outbox.append = real
        agent.report()
        assert [n["body"]["reason"] for n in _notices(agent)] == ["write_error"]
        assert agent.refused is None

    with_dir(t)


def test_agent_first_health_goes_as_soon_as_the_link_is_up_with_the_offline_figures():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)
        for _ in range(3):
            agent.emit("weighing", W)
        up = agent.uplink
        client = Client()

        async def script():
            if hal.ticks == 4000:  # the broker answers 4 s after boot
                up.client = client
                await up.start(client)

        hal.on_sleep = script
        hal.stop_at = 4000 + 25000
        raises(_Stop, asyncio.run, agent._health_loop())
        assert [line for line in hal.lines if "uplink" in line] == [
            "wb1 uplink connected to 127.0.0.1:1883 after 4000 ms offline, backlog 3"]
        first, second, third = client.tele
        assert first["ts"] == T0 + 4000  # at once, not health_interval_s after boot
        assert first["body"]["backlog_peak"] == 3 and first["body"]["offline_ms_max"] == 4000
        assert second["ts"] == T0 + 14000 and third["ts"] == T0 + 24000  # then every 10 s
        assert "backlog_peak" not in second["body"] and "offline_ms_max" not in second["body"]
        assert up.offline is None and up.stats["health_sent"] == 3

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
            assert kid == "k2" and fields == json.loads(stored[i][:stored[i].find(b"\n")])
            # JSON and device signature byte for byte as stored: only the HMAC line changed
            cut = stored[i].rfind(b"\n")
            assert client.events[i][:cut + 1] == stored[i][:cut + 1]
            assert stored[i][cut - 134:cut - 128] == b"es256:"
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
        for k in ("connects", "connect_failures", "links_lost", "outbox_full", "emit_errors",
                  "refused", "mem_errors"):
            assert body[k] == 0, k
        assert bodies.check("tele", "health", body) is None

    with_dir(t)


def _ack(agent, upto, retained=True):
    """The controller's signed, retained "committed up to ``upto``", as the uplink gets it."""
    t_ack = topics.topic("dl", "wb1", "ack")
    fields = envelope.make("wb1", 0, upto, T0, "ack", {"upto": upto, "resync": False})
    agent.uplink.on_message(t_ack, envelope.seal(bytes.fromhex(K1), "k1", t_ack, fields),
                            retained)


def _alarms(agent):
    out = []
    for _, _, wire in agent.outbox.pending(limit=10000):
        fields, _ = envelope.open_message(_secret(K1, "k1"), T_EVT, wire, False)
        if fields["kind"] == "alarm":
            out.append(fields["body"])
    return out


def test_agent_refuses_an_ack_beyond_its_next_seq_keeps_everything_and_raises_an_alarm():
    def t(d):
        agent = Agent(_cfg(d), Hal())
        for _ in range(72):
            agent.emit("weighing", W)
        _ack(agent, 473571143889)  # authentic: the controller's key, a careless admin's range
        assert agent.outbox.acked() == 0 and agent.outbox.backlog()[0] == 72
        assert agent.health_body()["acks_beyond"] == 1
        assert any("beyond next seq 73" in line for line in agent.hal.lines)
        agent.report()
        assert _alarms(agent) == [{"alarm": "ack_beyond_next_seq", "state": "raised",
                                   "detail": {"upto": 473571143889, "next_seq": 73}}]
        _ack(agent, 473571143889)  # the retained ack again at the next reconnect
        agent.report()
        assert len(_alarms(agent)) == 1  # one alarm for the episode
        _ack(agent, 70, retained=False)  # a sane ack: obeyed, and the alarm cleared
        agent.report()
        assert agent.outbox.acked() == 70
        assert _alarms(agent)[-1] == {"alarm": "ack_beyond_next_seq", "state": "cleared",
                                      "detail": {"upto": 70, "next_seq": 74}}
        assert [bodies.check("evt", "alarm", b) for b in _alarms(agent)] == [None, None]

    with_dir(t)


# -- the device key ------------------------------------------------------------------------

def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _parts(wire):
    return envelope.open_parts(_secret(K1, "k1"), T_EVT, wire, False)


def test_first_boot_makes_the_key_and_signs_custody_events_with_it():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)
        raw = read_slot(d + "/device_key", b"PWdk", True)
        dkey = p256.scalar(raw)
        assert dkey is not None and agent.signer.dkey == dkey
        assert agent.birth_body()["pub"] == p256.public(dkey)
        assert "wb1 device key pub " + p256.public(dkey) in hal.lines  # for set-key
        agent.emit("weighing", {"plate": "P1", "gross_kg": 45240})
        [(_, _, wire)] = list(agent.outbox.pending())
        fields, _, es = _parts(wire)
        json_bytes = wire[:wire.find(b"\n")]
        want = p256.sign(dkey, envelope.device_signed_bytes(T_EVT, json_bytes))
        assert es == hexlify(want).decode() and fields["body"]["gross_kg"] == 45240
        # sent as stored: a device-signed record under the current key is not resealed
        client = Client()
        asyncio.run(agent.uplink.start(client))
        assert asyncio.run(agent.uplink.send_some(client)) == 1
        assert client.events == [wire] and agent.health_body()["resealed"] == 0

    with_dir(t)


def test_the_key_survives_reboots_unchanged():
    def t(d):
        first = Agent(_cfg(d), Hal())
        stored = read_file(d + "/device_key")
        again = Agent(_cfg(d), Hal())
        assert again.boot == 2 and again.signer.dkey == first.signer.dkey
        assert read_file(d + "/device_key") == stored
        assert again.birth_body()["pub"] == first.birth_body()["pub"]

    with_dir(t)


def _boots_without_a_key(d, stored):
    hal = Hal()
    agent = Agent(_cfg(d), hal)
    assert agent.signer.dkey is None and "pub" not in agent.birth_body()
    assert read_file(d + "/device_key") == stored  # never overwritten
    said = [line for line in hal.lines if "DEVICE KEY UNREADABLE" in line]
    assert len(said) == 1, hal.lines
    [alarm] = _alarms(agent)
    assert alarm["alarm"] == "device_key_unreadable" and alarm["state"] == "raised"
    agent.emit("weighing", {"plate": "P1", "gross_kg": 45240})
    for _, _, wire in agent.outbox.pending():
        assert _parts(wire)[2] is None  # HMAC only
    return said[0]


def test_a_corrupt_key_file_is_reported_not_replaced():
    def t(d):
        Agent(_cfg(d), Hal())
        bad = bytearray(read_file(d + "/device_key"))
        bad[9] ^= 1  # a flipped bit: the CRC no longer holds
        write_file(d + "/device_key", bytes(bad))
        assert "corrupt" in _boots_without_a_key(d, bytes(bad))

    with_dir(t)


def test_a_key_file_holding_no_valid_scalar_is_reported_not_replaced():
    def t(d):
        for i, value in enumerate((bytes(32), p256.N.to_bytes(32, "big"))):
            sub = "%s/%d" % (d, i)
            os.mkdir(sub)
            write_slot(sub + "/device_key", b"PWdk", value)  # well formed, CRC right
            stored = read_file(sub + "/device_key")
            assert "not a P-256 private key" in _boots_without_a_key(sub, stored)

    with_dir(t)


def test_device_signing_false_makes_no_key_and_signs_with_the_hmac_only():
    def t(d):
        cfg = _cfg(d)
        cfg["device_signing"] = False
        hal = Hal()
        agent = Agent(cfg, hal)
        assert agent.signer.dkey is None and not _exists(d + "/device_key")
        assert "pub" not in agent.birth_body() and _alarms(agent) == []
        agent.emit("weighing", {"plate": "P1", "gross_kg": 45240})
        [(_, _, wire)] = list(agent.outbox.pending())
        assert _parts(wire)[2] is None and b"es256" not in wire

    with_dir(t)


def test_config_device_signing_defaults_on_and_must_be_a_boolean():
    cfg = _cfg("/tmp/x")
    assert check(cfg)["device_signing"] is True
    cfg = _cfg("/tmp/x")
    cfg["device_signing"] = "no"
    assert "device_signing" in str(raises(ConfigError, check, cfg))


def test_events_stored_before_the_key_existed_go_out_device_signed():
    # firmware updated with a backlog: what the older agent stored is the device's own
    # JSON, signed at send time (edge.signer.reseal), so the controller that registers the
    # key from the birth does not refuse the backlog
    def t(d):
        cfg = _cfg(d)
        cfg["device_signing"] = False
        old = Agent(cfg, Hal())
        old.emit("weighing", {"plate": "P1", "gross_kg": 45240})
        [(_, _, stored)] = list(old.outbox.pending())
        agent = Agent(_cfg(d), Hal())
        client = Client()
        asyncio.run(agent.uplink.start(client))
        assert asyncio.run(agent.uplink.send_some(client)) == 1
        [sent] = client.events
        json_bytes = stored[:stored.rfind(b"\n")]
        assert sent[:len(json_bytes)] == json_bytes
        want = p256.sign(agent.signer.dkey, envelope.device_signed_bytes(T_EVT, json_bytes))
        assert _parts(sent)[2] == hexlify(want).decode()
        assert agent.health_body()["resealed"] == 1

    with_dir(t)


def test_slot_layout_of_the_key_file():
    # magic, the 32-byte scalar, crc32: edge/FAILURES.md (Device key) documents it
    def t(d):
        agent = Agent(_cfg(d), Hal())
        data = read_file(d + "/device_key")
        assert len(data) == 40 and data[:4] == b"PWdk"
        assert int.from_bytes(data[4:36], "big") == agent.signer.dkey
        assert struct.unpack("<I", data[36:])[0] == crc32(data[:36]) & 0xFFFFFFFF

    with_dir(t)


def test_agent_health_out_of_memory_is_counted_and_tried_again_at_the_next_tick():
    def t(d):
        hal = Hal()
        agent = Agent(_cfg(d), hal)
        up = agent.uplink
        client = Client()
        publish = up.publish_health
        tries = []

        async def short_of_memory_once(body):
            tries.append(hal.ticks)
            if len(tries) == 1:  # a fragmented heap just after the link came up
                raise MemoryError("memory allocation failed, allocating 776 bytes")
            return await publish(body)

        up.publish_health = short_of_memory_once

        async def script():
            if hal.ticks == 1000:
                up.client = client
                await up.start(client)

        hal.on_sleep = script
        hal.stop_at = 1000 + 500
        raises(_Stop, asyncio.run, agent._health_loop())
        assert tries[:2] == [1000, 1100]  # again 100 ms later, not after a 1 s task restart
        assert agent.stats["mem_errors"] == 1 and len(client.tele) == 1
        assert client.tele[0]["body"]["backlog_peak"] == 0  # the offline figures still went

    with_dir(t)


def test_no_room_to_sign_stores_the_event_with_the_hmac_and_the_uplink_signs_it_later():
    import edge.signer

    def t(d):
        agent = Agent(_cfg(d), Hal())
        dkey = agent.signer.dkey
        real = edge.signer.p256

        def no_room(name, *args):
            raise MemoryError("no room for the big integers")

        edge.signer.p256 = no_room
        try:
            assert agent.emit("weighing", {"plate": "P1", "gross_kg": 45240}) == 1
            client = Client()
            asyncio.run(agent.uplink.start(client))
            assert asyncio.run(agent.uplink.send_some(client)) == 0  # waits: still no room
        finally:
            edge.signer.p256 = real
        [(_, _, stored)] = list(agent.outbox.pending())
        assert b"\nes256:" not in bytes(stored)  # durable at once, with the HMAC alone
        health = agent.health_body()
        assert health["devsig_deferred"] == 1 and health["reseal_waits"] == 1
        assert asyncio.run(agent.uplink.send_some(client)) == 1  # room again: signed, sent
        [wire] = client.events
        fields, _, es = _parts(wire)
        json_bytes = wire[:wire.find(b"\n")]
        want = p256.sign(dkey, envelope.device_signed_bytes(T_EVT, json_bytes))
        assert es == hexlify(want).decode() and fields["body"]["gross_kg"] == 45240
        assert agent.health_body()["resealed"] == 1

    with_dir(t)
