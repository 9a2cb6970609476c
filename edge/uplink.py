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

Collaborators, all passed in (tests/edge/test_uplink.py drives it with a fake client
and clock over a real outbox): ``signer`` (edge.signer), ``outbox`` (edge.outbox),
``hal`` (the clock: now_ms, ticks_ms, ticks_diff, sleep_ms), ``log(*parts)`` and
``birth()``, which returns the birth body. One session is ``start(client)`` then
``send_some(client)`` / ``resend_due()`` until the link drops; ``on_message`` takes
what the client receives.
"""

import asyncio
import os

from edge.explain import explain
from edge.net.mqtt import MQTTClient, MQTTError
from protocols import envelope, topics

BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30000
IDLE_WAIT_S = 1


class Uplink:
    """One device's MQTT session manager; ``run()`` reconnects forever."""

    def __init__(self, signer, outbox, hal, mqtt_cfg, site, log, birth, window=8,
                 resend_after_s=10):
        self.signer = signer
        self.outbox = outbox
        self.hal = hal
        self.mqtt_cfg = mqtt_cfg
        self.log = log
        self.birth = birth
        dev = signer.device_id
        self.t_state = topics.topic(site, dev, "state")
        self.t_ack = topics.topic(site, dev, "ack")
        self.t_cmd = topics.topic(site, dev, "cmd")
        self.t_tele = topics.topic(site, dev, "tele")
        self.t_evt = topics.topic(site, dev, "evt")
        self.window = window
        self.resend_after_ms = resend_after_s * 1000
        self.wake = asyncio.Event()  # set when there is something to send
        self.client = None
        self.conn_seq = 0
        self.tele_seq = 0
        self.cursor = 0  # sent up to here since the last rewind
        self.last_ack_move = 0
        self.clock_offset_ms = None
        self.stats = {"connects": 0, "connect_failures": 0, "links_lost": 0, "sent": 0,
                      "resends": 0, "acks": 0, "bad_downlink": 0, "unreadable_records": 0,
                      "health_sent": 0, "resealed": 0}

    # -- downlink -------------------------------------------------------------------

    def on_message(self, topic, payload, retained):
        if topic == self.t_ack:
            self._on_ack(payload, retained)
        # commands arrive on t_cmd: the weighbridge obeys none yet (barrier, display: later)

    def _on_ack(self, payload, retained):
        try:
            fields, _ = envelope.open_message(self.signer.secret_for, self.t_ack, payload,
                                              False)
            upto = fields["body"]["upto"]
            if type(upto) is not int or type(fields["ts"]) is not int:
                raise envelope.EnvelopeError("bad_body", "upto must be an integer")
        except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
            self.stats["bad_downlink"] += 1
            self.log("ignored a bad ack:", explain(exc))
            return
        self.stats["acks"] += 1
        self.clock_offset_ms = self.hal.now_ms() - fields["ts"]
        if self.outbox.ack(upto):
            self.last_ack_move = self.hal.ticks_ms()
        if retained or fields["body"].get("resync"):
            self.cursor = self.outbox.acked()
        self.wake.set()

    # -- session --------------------------------------------------------------------

    def _state(self, kind, body):
        return self.signer.seal(self.t_state, self.conn_seq, self.hal.now_ms(), kind, body)

    async def run(self):
        backoff = BACKOFF_MIN_MS
        while True:
            try:
                await self._session()
                backoff = BACKOFF_MIN_MS
            except (MQTTError, OSError) as exc:
                if self.client is not None and self.stats["connects"]:
                    self.stats["links_lost"] += 1
                self.log("uplink down:", explain(exc))
            finally:
                if self.client is not None:
                    self.client.close()
                    self.client = None
            jitter = int.from_bytes(os.urandom(2), "big") % (backoff // 4)
            await self.hal.sleep_ms(backoff + jitter)
            backoff = min(backoff * 2, BACKOFF_MAX_MS)

    async def _session(self):
        m = self.mqtt_cfg
        self.conn_seq += 1
        client = MQTTClient(
            self.signer.device_id, m["host"], m["port"], user=m["user"],
            password=m["password"], keepalive=m["keepalive"], clean_session=True,
            on_message=self.on_message, will=(self.t_state, self._state("death", {}), 1, True),
            max_inflight=self.window, queue_len=2)
        self.client = client
        try:
            await client.connect()
        except MQTTError:
            self.stats["connect_failures"] += 1
            raise
        self.stats["connects"] += 1
        self.log("uplink connected to %s:%d" % (m["host"], m["port"]))
        await self.start(client)
        while client.connected:
            if not await self.send_some(client) and not self.resend_due():
                await self._idle()

    async def start(self, client):
        """A new link: retained birth, subscriptions, and everything unacknowledged again."""
        await client.publish(self.t_state, self._state("birth", self.birth()), qos=1,
                             retain=True)
        await client.subscribe(self.t_ack, 1)
        await client.subscribe(self.t_cmd, 1)
        self.cursor = self.outbox.acked()
        self.last_ack_move = self.hal.ticks_ms()

    async def send_some(self, client):
        """Publish up to ``window`` events after the cursor; return how many went."""
        outbox = self.outbox
        pids = []
        last = self.cursor
        for seq, topic, payload in outbox.pending(after_seq=self.cursor, limit=self.window):
            if payload is None:  # unreadable on flash: declare that seq lost, signed
                self.stats["unreadable_records"] += 1
                topic = self.t_evt
                payload = self.signer.seal(topic, seq, self.hal.now_ms(), "gap",
                                           {"reason": "unreadable"})
            else:
                # stored under an older key, which expires after a rotation: the controller
                # would refuse it as expired_key for ever; re-signed, same content and seq
                new = self.signer.reseal(topic, payload)
                if new is not None:
                    self.stats["resealed"] += 1
                    payload = new
            pids.append(await client.publish(topic, payload, qos=1, wait=False))
            last = seq
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

    async def _idle(self):
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), IDLE_WAIT_S)
        except asyncio.TimeoutError:
            pass

    async def publish_health(self, body):
        """Publish one health sample with QoS 0 if connected; never raises."""
        client = self.client
        if client is None or not client.connected:
            return False
        self.tele_seq += 1
        wire = self.signer.seal(self.t_tele, self.tele_seq, self.hal.now_ms(), "health", body)
        try:
            await client.publish(self.t_tele, wire, qos=0)
        except (MQTTError, OSError):
            return False
        self.stats["health_sent"] += 1
        return True
