"""edge.uplink over a real outbox, with a fake MQTT client and clock; pytest and MicroPython.

The fake client stands at the Uplink's boundary (the calls it makes on edge.net.mqtt's
MQTTClient: publish, wait_ack, subscribe, connected); the client itself is tested against
Mosquitto in hil_tests. Time moves only when a test moves the fake clock: no sleeps.
Acks are built as the controller builds them (controller/ingest/service.py, ``_ack``).
"""

import asyncio
import json
import os
from binascii import hexlify

from edge.outbox import Outbox
from edge.signer import Signer
from edge.uplink import Uplink
from protocols import envelope, p256, topics
from shared_support import (
    FakeClock,
    make_tmpdir,
    raises,
    read_file,
    rmtree,
    serve_on_free_port,
    write_file,
)

SITE = "dl"
DEV = "wb1"
K1 = b"\x11" * 32
D_KEY = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721  # RFC 6979 A.2.5
K2 = b"\x22" * 32
T_EVT = topics.topic(SITE, DEV, "evt")
T_ACK = topics.topic(SITE, DEV, "ack")
T_STATE = topics.topic(SITE, DEV, "state")
T_TELE = topics.topic(SITE, DEV, "tele")
T0 = 1764072000000  # 2025-11-25 12:00:00 UTC
ACK_LAG_MS = 250  # how far the controller's clock is behind the device's in these acks


class Clock(FakeClock):
    """The HAL's clock and sleep: ``ticks`` moves only when a test moves it."""

    def __init__(self):
        FakeClock.__init__(self, T0)


class FakeClient:
    """Records every publish; each QoS 1 publish gets the next packet id, acked at once.

    Like MQTTClient, a publish with ``wait=False`` holds a window slot until ``wait_ack``."""

    def __init__(self):
        self.connected = True
        self.published = []  # (topic, payload, qos, retain)
        self.subscribed = []
        self.in_flight = []  # ids published with wait=False, not yet passed to wait_ack
        self.most_in_flight = 0
        self._pid = 0

    async def publish(self, topic, payload, qos=0, retain=False, wait=True, timeout=None):
        if not isinstance(topic, str):  # bytes or a view of the uplink's record buffer,
            topic = bytes(topic).decode()  # as the outbox gives them; MQTTClient takes all
        if isinstance(payload, tuple):  # parts, as MQTTClient takes them (health)
            payload = b"".join([bytes(p) for p in payload])
        payload = bytes(payload)  # a view is overwritten by the next record: copy it now
        self.published.append((topic, payload, qos, retain))
        if not qos:
            return 0
        self._pid += 1
        if not wait:
            self.in_flight.append(self._pid)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
        return self._pid

    async def wait_ack(self, pid, timeout=None):
        self.in_flight.remove(pid)  # ValueError, as MQTTClient's MQTTError: not in flight
        return 0

    async def subscribe(self, topic_filter, qos=1, timeout=None):
        self.subscribed.append(topic_filter)
        return qos

    def events(self):
        """The evt messages published so far, as (seq, payload)."""
        out = []
        for topic, payload, qos, _ in self.published:
            if topic == T_EVT:
                assert qos == 1
                # the JSON is what precedes the first newline (an es256 line may follow)
                out.append((json.loads(payload[:payload.find(b"\n")])["seq"], payload))
        return out

    def seqs(self):
        return [seq for seq, _ in self.events()]


class Device:
    """One device's uplink as the agent wires it, on an outbox in ``d``."""

    def __init__(self, d, key_id="k1", secret=K1, boot=1, window=4, resend_after_s=10,
                 port=1883):
        self.clock = Clock()
        self.outbox = Outbox(d + "/outbox", segment_bytes=1024)
        self.signer = Signer(DEV, boot, key_id, secret)
        self.lines = []
        mqtt_cfg = {"host": "127.0.0.1", "port": port, "user": None, "password": None,
                    "keepalive": 30}
        self.uplink = Uplink(self.signer, self.outbox, self.clock, mqtt_cfg, SITE, self.log,
                             self.birth, window=window, resend_after_s=resend_after_s)
        self.client = FakeClient()

    def log(self, *parts):
        self.lines.append(" ".join(str(p) for p in parts))

    def birth(self):
        return {"next_seq": self.outbox.next_seq()}

    def store(self, n):
        """Seal and append ``n`` weighings, as Agent.emit does; return their wire bytes."""
        wires = []
        for _ in range(n):
            seq = self.outbox.next_seq()
            wire = self.signer.seal(T_EVT, seq, self.clock.now_ms(), "weighing",
                                    {"plate": "P%d" % seq, "gross_kg": 30000 + seq})
            self.outbox.append(seq, T_EVT, wire)
            wires.append(wire)
        return wires

    def ack(self, upto, resync=False, retained=False, secret=K1, key_id="k1", body=None):
        """The controller's signed "committed up to seq ``upto``", delivered to the uplink."""
        fields = envelope.make(DEV, 0, upto, self.clock.now_ms() - ACK_LAG_MS, "ack",
                               {"upto": upto, "resync": resync} if body is None else body)
        self.uplink.on_message(T_ACK, envelope.seal(secret, key_id, T_ACK, fields), retained)

    def start(self, client=None):
        run(self.uplink.start(client or self.client))

    def send(self, client=None):
        """One ``send_some``: how many events went."""
        return run(self.uplink.send_some(client or self.client))

    def send_all(self, client=None):
        total = 0
        while True:
            n = self.send(client)
            if not n:
                return total
            total += n


def run(coro):
    return asyncio.run(coro)


def _fields(wire):
    return json.loads(wire[:wire.find(b"\n")])


def _only(key_id, secret):
    return lambda kid: secret if kid == key_id else None


def with_device(test, **kw):
    d = make_tmpdir("up")
    try:
        test(Device(d, **kw), d)
    finally:
        rmtree(d)


def test_uplink_start_publishes_a_signed_retained_birth_and_subscribes():
    def t(dev, d):
        dev.store(2)
        dev.start()
        [(topic, wire, qos, retain)] = dev.client.published
        assert (topic, qos, retain) == (T_STATE, 1, True)
        fields, kid = envelope.open_message(_only("k1", K1), T_STATE, wire, False)
        assert kid == "k1" and fields["kind"] == "birth"
        assert (fields["dev"], fields["boot"], fields["body"]) == (DEV, 1, {"next_seq": 3})
        assert dev.client.subscribed == [T_ACK, topics.topic(SITE, DEV, "cmd")]

    with_device(t)


def test_uplink_sends_the_outbox_in_seq_order_a_window_at_a_time():
    def t(dev, d):
        wires = dev.store(10)
        dev.start()
        assert [dev.send() for _ in range(4)] == [4, 4, 2, 0]
        assert dev.client.events() == [(i + 1, wires[i]) for i in range(10)]  # bytes as stored
        assert dev.client.in_flight == [] and dev.client.most_in_flight == 4  # the window
        assert dev.uplink.stats["sent"] == 10 and dev.outbox.acked() == 0

    with_device(t, window=4)


def test_uplink_resync_ack_rewinds_the_cursor_to_the_acknowledged_seq():
    def t(dev, d):
        dev.store(5)
        dev.start()
        assert dev.send_all() == 5
        dev.ack(2)  # a live ack: the outbox drops 1-2, nothing is resent
        assert dev.outbox.acked() == 2 and dev.send() == 0
        dev.ack(2, resync=True)  # the controller restarted: it has 1-2 and nothing after
        assert dev.send_all() == 3
        assert dev.client.seqs() == [1, 2, 3, 4, 5, 3, 4, 5]
        dev.ack(4, retained=True)  # the retained ack after a subscribe rewinds too
        assert dev.send_all() == 1
        assert dev.client.seqs()[-1] == 5 and dev.outbox.acked() == 4

    with_device(t)


def test_uplink_resends_after_resend_after_s_without_the_ack_moving():
    def t(dev, d):
        dev.store(3)
        dev.start()
        dev.send_all()
        up = dev.uplink
        dev.clock.ticks += 10000
        assert not up.resend_due()  # exactly resend_after_s: not yet
        dev.clock.ticks += 1
        assert up.resend_due() and up.stats["resends"] == 1
        assert dev.lines == ["uplink connected to 127.0.0.1:1883 after 0 ms offline, backlog 3",
                             "no ack for 10001 ms: resending from seq 1"]
        assert dev.send_all() == 3 and dev.client.seqs() == [1, 2, 3, 1, 2, 3]
        assert not up.resend_due()  # the wait starts again from the resend
        dev.clock.ticks += 6000
        dev.ack(1)  # the ack moved: the wait restarts from here
        dev.clock.ticks += 10000
        assert not up.resend_due()
        dev.clock.ticks += 1
        assert up.resend_due() and dev.lines[-1] == "no ack for 10001 ms: resending from seq 2"
        assert dev.send_all() == 2 and dev.client.seqs()[-2:] == [2, 3]
        dev.ack(3)  # nothing waits for an ack: no resend however long it stays quiet
        dev.clock.ticks += 3600000
        assert not up.resend_due() and up.stats["resends"] == 2

    with_device(t, resend_after_s=10)


def _damage(d, needle):
    """Flip one byte inside the stored record whose bytes hold ``needle`` (flash rot)."""
    for name in os.listdir(d + "/outbox"):
        path = d + "/outbox/" + name
        data = bytearray(read_file(path))
        at = bytes(data).find(needle)
        if at >= 0:
            data[at] ^= 0x20
            write_file(path, bytes(data))
            return
    raise AssertionError("no record holds %r" % needle)


def test_uplink_unreadable_record_goes_out_as_a_signed_gap():
    def t(dev, d):
        wires = dev.store(3)
        _damage(d, b'"P2"')
        dev = Device(d)  # reboot: the damage is found when the record is read back
        dev.clock.ticks = 5000
        dev.start()
        assert dev.send_all() == 3
        events = dev.client.events()
        assert [s for s, _ in events] == [1, 2, 3]
        assert events[0][1] == wires[0] and events[2][1] == wires[2]
        fields, kid = envelope.open_message(_only("k1", K1), T_EVT, events[1][1], False)
        assert kid == "k1"
        assert (fields["dev"], fields["seq"], fields["kind"]) == (DEV, 2, "gap")
        assert fields["body"] == {"reason": "unreadable"} and fields["ts"] == T0 + 5000
        assert dev.uplink.stats["unreadable_records"] == 1
        assert raises(envelope.EnvelopeError, envelope.open_message, _only("k1", K2), T_EVT,
                      events[1][1], False).reason == "bad_signature"
        dev.ack(3)  # the controller's commit passes the gap: the outbox lets it go
        assert dev.outbox.acked() == 3 and dev.outbox.backlog()[0] == 0

    with_device(t)


def test_uplink_unreadable_record_gap_carries_the_device_signature():
    def t(dev, d):
        dev.signer.dkey = D_KEY
        wires = dev.store(3)
        _damage(d, b'"P2"')
        dev = Device(d)
        dev.signer.dkey = D_KEY  # as the agent sets it at boot
        dev.start()
        assert dev.send_all() == 3
        events = dev.client.events()
        assert events[0][1] == wires[0] and events[2][1] == wires[2]  # sent as stored
        gap = events[1][1]
        fields, kid, es = envelope.open_parts(_only("k1", K1), T_EVT, gap, False)
        assert (kid, fields["kind"], fields["seq"]) == ("k1", "gap", 2)
        json_bytes = gap[:gap.find(b"\n")]
        assert es == hexlify(p256.sign(D_KEY, envelope.device_signed_bytes(
            T_EVT, json_bytes))).decode()
        assert dev.uplink.stats["resealed"] == 0

    with_device(t)


def test_uplink_reseals_events_stored_under_an_old_key_after_a_rotation():
    def t(dev, d):
        old = dev.store(2)  # sealed under k1 while the broker was away
        dev = Device(d, key_id="k2", secret=K2, boot=2)  # rebooted with the rotated key
        new = dev.store(1)
        dev.start()
        assert dev.send_all() == 3
        events = dev.client.events()
        assert [s for s, _ in events] == [1, 2, 3]
        for i in (0, 1):
            fields, kid = envelope.open_message(_only("k2", K2), T_EVT, events[i][1], False)
            assert kid == "k2"
            assert fields == _fields(old[i])  # same seq, boot 1, ts and body: only the key
            assert raises(envelope.EnvelopeError, envelope.open_message, _only("k1", K1),
                          T_EVT, events[i][1], False).reason == "unknown_key"
        assert events[2][1] == new[0]  # already under k2: sent as stored
        assert dev.uplink.stats["resealed"] == 2
        dev.ack(3, secret=K2, key_id="k2")  # acks come under the new key
        assert dev.outbox.acked() == 3

    with_device(t)


def test_uplink_ack_with_a_bad_signature_is_counted_and_ignored():
    def t(dev, d):
        dev.store(3)
        dev.start()
        dev.send_all()
        dev.ack(3, secret=K2)  # forged: right key id, wrong secret
        dev.ack(3, key_id="k9")  # a key this device does not hold
        dev.uplink.on_message(T_ACK, b'{"upto": 3}', True)  # no signature at all
        dev.ack(3, body={"upto": "3"})  # signed, but upto is not an integer
        dev.ack(3, body={})  # signed, no upto
        up = dev.uplink
        assert up.stats["bad_downlink"] == 5 and up.stats["acks"] == 0
        assert dev.outbox.acked() == 0 and up.clock_offset_ms is None
        lines = dev.lines[1:]  # after "uplink connected ..."
        assert lines[0].startswith("ignored a bad ack: EnvelopeError: bad_signature")
        assert lines[1].startswith("ignored a bad ack: EnvelopeError: unknown_key")
        assert lines[4] == "ignored a bad ack: KeyError: upto"
        dev.clock.ticks += 10001
        assert up.resend_due()  # the ignored acks did not count as progress

    with_device(t)


def _segments(d):
    return sorted(n for n in os.listdir(d + "/outbox") if n.endswith(".seg"))


def test_uplink_ack_moving_frees_the_outbox():
    def t(dev, d):
        dev.store(12)  # ~230 B records in 1 KiB segments: 1-4, 5-8, 9-12
        assert _segments(d) == ["0000000001.seg", "0000000005.seg", "0000000009.seg"]
        dev.start()
        dev.send_all()
        dev.ack(8)
        up = dev.uplink
        assert dev.outbox.acked() == 8 and dev.outbox.backlog()[0] == 4
        assert _segments(d) == ["0000000009.seg"]  # whole acknowledged segments deleted
        assert [r[0] for r in dev.outbox.pending(limit=100)] == [9, 10, 11, 12]
        assert up.stats["acks"] == 1 and up.clock_offset_ms == ACK_LAG_MS
        dev.ack(99)  # beyond the last stored seq: ignored whole by the outbox
        assert dev.outbox.acked() == 8 and dev.outbox.stats["acks_beyond"] == 1
        assert Outbox(d + "/outbox").acked() == 8  # the watermark survives a reboot

    with_device(t)


def test_uplink_reconnect_sends_everything_unacknowledged_again():
    def t(dev, d):
        dev.store(4)
        dev.start()
        dev.send_all()
        dev.ack(2)
        dev.client.connected = False
        again = FakeClient()
        dev.start(again)
        assert dev.send_all(again) == 2
        assert again.seqs() == [3, 4] and again.published[0][0] == T_STATE

    with_device(t)


def test_uplink_health_goes_with_qos_0_on_tele_only_while_linked():
    def t(dev, d):
        up = dev.uplink
        assert not run(up.publish_health({"backlog": 0}))  # never connected
        up.client = dev.client
        assert not run(up.publish_health({"backlog": 0}))  # connected, no birth yet
        dev.start()
        dev.client.published = []
        assert run(up.publish_health({"backlog": 1})) and run(up.publish_health({"backlog": 2}))
        dev.client.connected = False
        assert not run(up.publish_health({"backlog": 3}))
        assert [(p[0], p[2]) for p in dev.client.published] == [(T_TELE, 0), (T_TELE, 0)]
        fields, _ = envelope.open_message(_only("k1", K1), T_TELE, dev.client.published[1][1],
                                          False)
        assert (fields["kind"], fields["seq"], fields["body"]) == ("health", 2, {"backlog": 2})
        assert up.stats["health_sent"] == 2

    with_device(t)


def _health(dev):
    """The bodies of the health samples published so far."""
    return [_fields(p[1])["body"] for p in dev.client.published if p[0] == T_TELE]


def test_uplink_first_health_after_a_link_comes_up_carries_the_offline_figures():
    def t(dev, d):
        up = dev.uplink
        up.client = dev.client
        dev.store(2)
        dev.clock.ticks = 3000  # 3 s from boot to the first link
        dev.start()
        assert run(up.publish_health({"fw": "x"})) and run(up.publish_health({"fw": "x"}))
        first, second = _health(dev)
        assert (first["backlog_peak"], first["offline_ms_max"]) == (2, 3000)
        assert "backlog_peak" not in second and "offline_ms_max" not in second
        # two outages before the next sample: the largest backlog and the longest outage
        for backlog, offline_ms in ((5, 20000), (7, 4000)):
            up.linked = False  # the link goes down (as run() does when a session ends)
            up.down_at = dev.clock.ticks
            dev.store(backlog - dev.outbox.backlog()[0])
            dev.clock.ticks += offline_ms
            dev.start()
        assert run(up.publish_health({"fw": "x"}))
        third = _health(dev)[-1]
        assert (third["backlog_peak"], third["offline_ms_max"]) == (7, 20000)
        assert up.offline is None

    with_device(t)


class _Stop(Exception):
    pass


class Sleeps:
    """The clock's sleep, recording each duration; raises _Stop at the ``n``-th."""

    def __init__(self, dev, n):
        self.dev = dev
        self.n = n
        self.got = []

    async def __call__(self, ms):
        self.got.append(ms)
        self.dev.clock.ticks += ms
        if len(self.got) == self.n:
            raise _Stop()


def test_uplink_reconnect_backoff_is_full_jitter_capped_at_1500_ms():
    def t(dev, d):
        from edge.net.mqtt import ConnectionLost

        up = dev.uplink
        plan = []  # per session: True when its link came up before it was lost

        async def session():
            if plan.pop(0):
                up.linked = True
            raise ConnectionLost("connection refused (ECONNREFUSED) to 127.0.0.1:1883")

        up._session = session
        draws = []  # what rand() returns next, as 16-bit numbers
        up.rand = lambda n: draws.pop(0).to_bytes(2, "big")
        for values, want in (
                ([500, 1000, 1500, 1500, 1500], [500, 1000, 1500, 1500, 1500]),  # the top
                ([501, 1001, 1501, 1501, 1501], [0, 0, 0, 0, 0]),  # the bottom
                ([65535] * 5, [405, 470, 992, 992, 992])):  # 65535 % (step + 1)
            draws[:] = values
            plan[:] = [False] * 5
            sleeps = dev.clock.sleep_ms = Sleeps(dev, 5)
            raises(_Stop, run, up.run())
            assert sleeps.got == want, (values, sleeps.got)
        # a link that was up resets the step: the next wait is at most 500 ms again
        draws[:] = [500, 1000, 1500, 500, 1000, 1500]
        plan[:] = [False, False, False, True, False, False]
        sleeps = dev.clock.sleep_ms = Sleeps(dev, 6)
        raises(_Stop, run, up.run())
        assert sleeps.got == [500, 1000, 1500, 500, 1000, 1500]
        # any draw: never more than 1.5 s between two attempts, however long the outage
        draws[:] = list(range(0, 65536, 97))[:200]
        plan[:] = [False] * 200
        sleeps = dev.clock.sleep_ms = Sleeps(dev, 200)
        raises(_Stop, run, up.run())
        assert max(sleeps.got) <= 1500 and min(sleeps.got) >= 0 and len(set(sleeps.got)) > 100

    with_device(t)


def test_uplink_counts_links_lost_apart_from_failed_connects_and_logs_once_per_outage():
    def t(dev, d):
        from edge.net.mqtt import ConnectionLost, MQTTTimeout

        up = dev.uplink
        stats = up.stats
        script = [("up", ConnectionLost("link down: closed by the peer (EOF)"))]
        script += [("refused", ConnectionLost("connection refused (ECONNREFUSED) to b:1"))] * 4
        script += [("refused", MQTTTimeout("no CONNACK within 5 s"))] * 2
        script += [("up", ConnectionLost("link down: nothing from the broker for 15000 ms"))]

        async def session():
            what, exc = script.pop(0)
            if what == "up":
                stats["connects"] += 1
                up.linked = True
            else:
                stats["connect_failures"] += 1
            raise exc

        up._session = session
        up.rand = lambda n: b"\x00\x00"
        dev.clock.sleep_ms = Sleeps(dev, 8)
        raises(_Stop, run, up.run())
        assert (stats["connects"], stats["links_lost"], stats["connect_failures"]) == (2, 2, 6)
        assert dev.lines == [
            "uplink down: ConnectionLost: link down: closed by the peer (EOF)",
            "uplink down: ConnectionLost: connection refused (ECONNREFUSED) to b:1",
            "uplink down: MQTTTimeout: no CONNACK within 5 s",
            "uplink down: ConnectionLost: link down: nothing from the broker for 15000 ms"]

    with_device(t)


def test_uplink_names_the_error_when_the_broker_refuses_the_connection():
    async def closed_port():
        async def nobody(r, w):
            w.close()

        server, port = await serve_on_free_port(nobody, "closed port")
        server.close()
        await server.wait_closed()
        return port

    d = make_tmpdir("up")
    try:
        port = run(closed_port())
        dev = Device(d, port=port)

        def log(*parts):
            dev.log(*parts)
            raise _Stop()  # one failed session is enough

        dev.uplink.log = log
        raises(_Stop, run, dev.uplink.run())
        assert dev.lines == ["uplink down: ConnectionLost: connection refused (ECONNREFUSED) "
                             "to 127.0.0.1:%d" % port]
        assert dev.uplink.stats["connect_failures"] == 1 and not dev.uplink.client.connected
    finally:
        rmtree(d)
