"""The MQTT side of the agent: birth and will, the outbox stream, acks, health.

Delivery (protocols/PROTOCOL.md, Delivery): events leave the outbox with QoS 1 in seq
order, at most ``window`` in flight; they stay in the outbox until the controller's
signed, retained "committed up to seq N" arrives on ``.../ack``. The send cursor
rewinds to the acknowledged seq (so everything after it goes again, and the
controller deduplicates) when: the link comes back; an ack says ``resync`` (the
controller restarted, or saw our birth); or ``resend_after_s`` pass without the
acknowledgement moving while sent events wait for it.

Birth and death are retained on ``.../state`` with (boot, connection number) as
their freshness key, like Sparkplug's bdSeq; the death is the MQTT will, so the
broker publishes it when the link dies without a DISCONNECT.

Reconnecting: after a failed or lost session the uplink waits a random time, uniform over
[0, step] ("full jitter"), with step 500 ms after a link that was up, then 1,000 ms, then
1,500 ms for as long as the broker stays away: an agent offline for any time tries again at
least every 1.5 s, and many agents do not come back in step (edge/FAILURES.md, Broker
unreachable). ``rand(n)`` (``os.urandom``) draws the jitter; tests replace it.

Offline figures: when a link comes up, the time since the last one went down (or since
boot) and the outbox backlog (which only grows while offline: nothing is acknowledged)
are kept in ``offline`` = (backlog_peak, offline_ms_max), the largest of each over the
outages since the last health sample; the next health sample carries them and clears
them. ``linked`` is True from the birth to the loss of the link.

Collaborators, all passed in (tests/edge/test_uplink.py drives it with a fake client
and clock over a real outbox): ``signer`` (edge.signer), ``outbox`` (edge.outbox),
``hal`` (the clock: now_ms, ticks_ms, ticks_diff, sleep_ms), ``log(*parts)`` and
``birth()``, which returns the birth body. One session is ``start(client)`` then
``send_some(client)`` / ``resend_due()`` until the link drops; ``on_message`` takes
what the client receives.
"""

import gc
import json
import os
from binascii import hexlify

from edge.explain import explain
from edge.net.mqtt import MQTTClient, MQTTError, connect_packet
from edge.signer import EnvelopeError

BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 1500
IDLE_MS = 1000  # idle this long without news, then look for resends
POLL_MS = 20  # how often an idle uplink looks at ``wake``
REC_BYTES = 576  # records up to this (a device-signed weighing: ~515 B) go from one buffer


class Uplink:
    """One device's MQTT session manager; ``run()`` reconnects forever."""

    def __init__(self, signer, outbox, hal, mqtt_cfg, site, log, birth, window=8,
                 resend_after_s=10):
        self.signer = signer
        self.outbox = outbox
        self.hal = hal
        self.mqtt_cfg = mqtt_cfg
        self.tls = mqtt_cfg.pop("context", None)  # made by the agent first thing at boot
        if mqtt_cfg.get("tls") and self.tls is None:  # once: the pinned CA parsed for every
            # reconnect
            from edge.net.sock import context

            self.tls = context(mqtt_cfg.pop("ca"))
        self.log = log
        self.birth = birth
        from protocols import topics  # here only: the agent frees it after boot

        dev = signer.device_id
        self.t_state = topics.topic(site, dev, "state")
        self.t_ack = topics.topic(site, dev, "ack")
        self.t_cmd = topics.topic(site, dev, "cmd")
        self.t_tele = topics.topic(site, dev, "tele")
        self.t_evt = topics.topic(site, dev, "evt")
        # commands (edge/commands.py, loaded per command, keeps here what outlives one):
        # [the driver that obeys them (None: none), [[id, result or None while in
        # progress] of the last 8], [answers waiting for the link]], made by the agent for
        # a driver that obeys commands, else at the first command (None until then: heap)
        self.cmds = None
        self.window = window
        self.resend_after_ms = resend_after_s * 1000
        self.wake = False  # set when there is something to send (polled: no asyncio.Event)
        # the record being sent, read from flash (no alloc); a bigger one is sent from
        # flash through it piece by piece (edge.outbox_spill.Spill)
        self.rec = bytearray(REC_BYTES)
        self.kid_line = b"\n" + signer.key_id.encode() + b":"  # ends a record signed now
        self.rand = os.urandom
        self.client = None
        self.linked = False
        self.down_at = hal.ticks_ms()  # when the link went down (boot: never up yet)
        self.offline = None  # (backlog_peak, offline_ms_max) for the next health sample
        self.last_error = None  # logged once per outage
        self.conn_seq = 0
        self.tele_seq = 0
        self.cursor = 0  # sent up to here since the last rewind
        self.last_ack_move = 0
        self.clock_offset_ms = None
        self.beyond = False  # the last ack was beyond our next seq
        self.alarm = None  # (raised, upto, next_seq) for the agent to store as an alarm
        self.stats = {"connects": 0, "connect_failures": 0, "links_lost": 0, "sent": 0,
                      "resends": 0, "acks": 0, "bad_downlink": 0, "unreadable_records": 0,
                      "health_sent": 0, "resealed": 0}

    # -- downlink -------------------------------------------------------------------

    def on_message(self, topic, payload, retained):
        """The client's callback: acks on t_ack; commands on t_cmd (``command``)."""
        if topic == self.t_cmd:
            from edge.commands import handle

            handle(self, payload)
            return
        if topic != self.t_ack:
            return
        try:
            fields = self.signer.open(self.t_ack, payload)
            upto = fields["body"]["upto"]
            if type(upto) is not int or type(fields["ts"]) is not int:
                raise EnvelopeError("bad_body: upto must be an integer")
        except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
            self.stats["bad_downlink"] += 1
            self.log("ignored a bad ack:", explain(exc))
            return
        self.stats["acks"] += 1
        self.clock_offset_ms = self.hal.now_ms() - fields["ts"]
        nxt = self.outbox.next_seq()
        if (upto >= nxt) != self.beyond:
            # authentic, but for seqs this device has not made (an admin's or a controller's
            # mistake): obeying would drop what is not yet sent, so the outbox ignores it;
            # the agent raises ack_beyond_next_seq (cleared by the next sane ack)
            self.beyond = upto >= nxt
            self.alarm = (self.beyond, upto, nxt)
            if self.beyond:
                self.log("ack up to %d, beyond next seq %d: ignored, nothing dropped" % (
                    upto, nxt))
        if self.outbox.ack(upto):
            self.last_ack_move = self.hal.ticks_ms()
        if retained or fields["body"].get("resync"):
            self.cursor = self.outbox.acked()
        self.wake = True

    # -- session --------------------------------------------------------------------

    async def run(self):
        hal = self.hal
        step = BACKOFF_MIN_MS
        while True:
            try:
                await self._session()
            except (MQTTError, OSError) as exc:
                why = explain(exc)
                if self.linked or why != self.last_error:  # once per outage and reason
                    self.log("uplink down:", why)
                self.last_error = why
            finally:
                if self.linked:
                    self.stats["links_lost"] += 1
                    self.linked = False
                    self.down_at = hal.ticks_ms()
                    step = BACKOFF_MIN_MS
                if self.client is not None:
                    self.client.close()
            # full jitter: uniform over [0, step], step 500 -> 1000 -> 1500 ms (the cap)
            await hal.sleep_ms(int.from_bytes(self.rand(2), "big") % (step + 1))
            step = min(step * 2, BACKOFF_MAX_MS)

    async def _session(self):
        m = self.mqtt_cfg
        self.conn_seq += 1
        # a new death (this connection's number) as the will; one client for every session:
        # its buffers are allocated once, not again at each reconnect in a fragmented heap
        packet = connect_packet(self.signer.device_id, m["keepalive"], True, m["user"],
                                m["password"], (self.t_state, self.signer.seal(
                                    self.t_state, self.conn_seq, self.hal.now_ms(), "death", {}),
                                    1, True))
        client = self.client
        if client is None:
            client = self.client = MQTTClient(
                self.signer.device_id, m["host"], m["port"], keepalive=m["keepalive"],
                on_message=self.on_message, max_inflight=self.window, tls=self.tls)
        try:
            await client.connect(packet)
        except MQTTError:
            self.stats["connect_failures"] += 1
            raise
        self.stats["connects"] += 1
        await self.start(client)
        while client.connected:
            if not await self.send_some(client) and not self.resend_due():
                # idle: until ``wake`` (an event stored, an ack), looking every POLL_MS
                self.wake = False
                n = IDLE_MS // POLL_MS
                while n and not self.wake and client.connected:
                    n -= 1
                    await self.hal.sleep_ms(POLL_MS)

    async def start(self, client):
        """A new link: retained birth, subscriptions, and everything unacknowledged again."""
        hal = self.hal
        # birth and death: sealed inline (a method costs ~90 B of heap on the device)
        await client.publish(self.t_state, self.signer.seal(
            self.t_state, self.conn_seq, hal.now_ms(), "birth", self.birth(), parts=True),
            qos=1, retain=True)
        await client.subscribe(self.t_ack, 1)
        await client.subscribe(self.t_cmd, 1)
        self.cursor = self.outbox.acked()
        self.last_ack_move = now = hal.ticks_ms()
        off = hal.ticks_diff(now, self.down_at)
        peak = self.outbox.backlog()[0]
        o = self.offline
        self.offline = (max(peak, o[0]), max(off, o[1])) if o else (peak, off)
        self.linked = True
        self.last_error = None
        m = self.mqtt_cfg
        self.log("uplink connected to %s:%d after %d ms offline, backlog %d" % (
            m["host"], m["port"], off, peak))

    async def send_some(self, client):
        """Publish the commands' answers waiting (edge/commands.py), then up to ``window``
        events after the cursor; return how many events went."""
        q = self.cmds and self.cmds[2]
        while q:  # on .../cmdack, numbered with health (a per-boot counter)
            self.tele_seq += 1
            t = self.t_cmd + "ack"
            await client.publish(t, self.signer.seal(t, self.tele_seq, self.hal.now_ms(),
                                                     "cmdack", q.pop(0), parts=True),
                                 qos=1)
        outbox = self.outbox
        pids = []
        last = self.cursor
        kid = self.kid_line
        # each record is read into self.rec and written to the socket before the next one
        for seq, topic, payload in outbox.pending(after_seq=self.cursor, limit=self.window,
                                                  out=self.rec):
            if payload is None:  # unreadable on flash: declare that seq lost, signed
                self.stats["unreadable_records"] += 1
                topic = self.t_evt
                payload = self.signer.seal(topic, seq, self.hal.now_ms(), "gap",
                                           {"reason": "unreadable"})
            elif bytes(payload[-64 - len(kid):-64]) != kid or (
                    self.signer.dkey is not None
                    and bytes(payload[-199 - len(kid):-192 - len(kid)]) != b"\nes256:"):
                # stored under an older key, which expires after a rotation: the controller
                # would refuse it as expired_key for ever; or stored before the device had
                # its own key (the outbox holds evt records only): re-signed, same JSON, seq
                # and device signature (edge.signer); or stored when the heap had no room
                # for the device's signature (edge.agent): signed now
                try:
                    new = self.signer.reseal(bytes(topic), bytes(payload[:]))
                except MemoryError:  # no room yet: this record and those after it wait
                    self.stats["reseal_waits"] = self.stats.get("reseal_waits", 0) + 1
                    topic = payload = None
                    gc.collect()
                    break
                if new is not None:
                    self.stats["resealed"] += 1
                    payload = new
            pids.append(await client.publish(topic, payload, qos=1, wait=False))
            last = seq
        topic = payload = None  # not held while waiting for the acks
        for pid in pids:
            await client.wait_ack(pid)
        self.stats["sent"] += len(pids)
        if last != self.cursor:
            if self.cursor <= outbox.acked():
                self.last_ack_move = self.hal.ticks_ms()
            self.cursor = max(self.cursor, last)
        return len(pids)

    def resend_due(self):
        """Rewind the cursor when sent events waited ``resend_after_s`` with no ack moving."""
        outbox = self.outbox
        hal = self.hal
        if self.cursor <= outbox.acked():
            return False
        waited = hal.ticks_diff(hal.ticks_ms(), self.last_ack_move)
        if waited <= self.resend_after_ms:
            return False
        self.stats["resends"] += 1
        self.log("no ack for %d ms: resending from seq %d" % (waited, outbox.acked() + 1))
        self.cursor = outbox.acked()
        self.last_ack_move = hal.ticks_ms()
        return True

    async def publish_health(self, body):
        """Publish one health sample with QoS 0 if linked; never raises. The first after a
        link came up also carries ``backlog_peak`` and ``offline_ms_max``."""
        client = self.client
        if not self.linked or client is None or not client.connected:
            return False
        o = self.offline
        if o:
            body["backlog_peak"], body["offline_ms_max"] = o
        self.tele_seq += 1
        sg = self.signer
        # The envelope as Signer.seal makes it, but its JSON (~1 KB) made and sent in
        # pieces of at most ~240 B, and its signature line after them: on a fragmented heap
        # a piece of 1 KB was not always there, and health then stopped for as long
        # (edge/FAILURES.md, Heap). The body is flat: one "key": value at a time.
        cur = '{"v": 1, "dev": %s, "boot": %d, "seq": %d, "ts": %d, "kind": "health", ' \
              '"body": {' % (json.dumps(sg.device_id), sg.boot, self.tele_seq,
                             self.hal.now_ms())
        parts = []
        sep = ""
        for k in body:
            item = '%s"%s": %s' % (sep, k, json.dumps(body[k]))
            sep = ", "
            if len(cur) + len(item) > 240:
                parts.append(cur.encode())
                cur = item
            else:
                cur += item
        parts.append((cur + "}}").encode())
        parts.append(self.kid_line)
        parts.append(hexlify(sg.sign(self.t_tele, *parts[:-1])))
        cur = item = None
        try:
            await client.publish(self.t_tele, tuple(parts), qos=0)
        except (MQTTError, OSError):
            return False
        self.offline = None
        self.stats["health_sent"] += 1
        return True
