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
"""

import asyncio
import json

from edge.net.mqtt import MQTTClient, MQTTError
from protocols import envelope, topics

BACKOFF_MIN_MS = 500
BACKOFF_MAX_MS = 30000
IDLE_WAIT_S = 1


class Uplink:
    """One device's MQTT session manager; ``run()`` reconnects forever."""

    def __init__(self, agent):
        self.agent = agent
        cfg = agent.cfg
        self.mqtt_cfg = cfg["mqtt"]
        site, dev = cfg["site"], cfg["device_id"]
        self.t_state = topics.topic(site, dev, "state")
        self.t_ack = topics.topic(site, dev, "ack")
        self.t_cmd = topics.topic(site, dev, "cmd")
        self.t_tele = topics.topic(site, dev, "tele")
        self.window = cfg["window"]
        self.resend_after_ms = cfg["resend_after_s"] * 1000
        self.client = None
        self.conn_seq = 0
        self.tele_seq = 0
        self.cursor = 0
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
        agent = self.agent
        try:
            fields, _ = envelope.open_message(agent.secret_for, self.t_ack, payload, False)
            upto = fields["body"]["upto"]
            if type(upto) is not int or type(fields["ts"]) is not int:
                raise envelope.EnvelopeError("bad_body", "upto must be an integer")
        except (ValueError, KeyError, TypeError) as exc:  # EnvelopeError is a ValueError
            self.stats["bad_downlink"] += 1
            agent.log("ignored a bad ack:", exc)
            return
        self.stats["acks"] += 1
        self.clock_offset_ms = agent.hal.now_ms() - fields["ts"]
        if agent.outbox.ack(upto):
            self.last_ack_move = agent.hal.ticks_ms()
        if retained or fields["body"].get("resync"):
            self.cursor = agent.outbox.acked()
        agent.wake.set()

    # -- session --------------------------------------------------------------------

    def _state(self, kind, body):
        agent = self.agent
        fields = envelope.make(agent.device_id, agent.boot, self.conn_seq, agent.hal.now_ms(),
                               kind, body)
        return agent.seal(self.t_state, fields)

    async def run(self):
        backoff = BACKOFF_MIN_MS
        while True:
            try:
                await self._session()
                backoff = BACKOFF_MIN_MS
            except (MQTTError, OSError) as exc:
                if self.client is not None and self.stats["connects"]:
                    self.stats["links_lost"] += 1
                self.agent.log("uplink down:", exc)
            finally:
                if self.client is not None:
                    self.client.close()
                    self.client = None
            await self.agent.hal.sleep_ms(backoff + self.agent.jitter(backoff // 4))
            backoff = min(backoff * 2, BACKOFF_MAX_MS)

    async def _session(self):
        m = self.mqtt_cfg
        self.conn_seq += 1
        client = MQTTClient(
            self.agent.device_id, m["host"], m["port"], user=m["user"], password=m["password"],
            keepalive=m["keepalive"], clean_session=True, on_message=self.on_message,
            will=(self.t_state, self._state("death", {}), 1, True), max_inflight=self.window,
            queue_len=2)
        self.client = client
        try:
            await client.connect()
        except MQTTError:
            self.stats["connect_failures"] += 1
            raise
        self.stats["connects"] += 1
        self.agent.log("uplink connected to %s:%d" % (m["host"], m["port"]))
        await client.publish(self.t_state, self._state("birth", self.agent.birth_body()), qos=1,
                             retain=True)
        await client.subscribe(self.t_ack, 1)
        await client.subscribe(self.t_cmd, 1)
        self.cursor = self.agent.outbox.acked()
        self.last_ack_move = self.agent.hal.ticks_ms()
        while client.connected:
            if not await self._send_some(client):
                await self._idle()

    async def _send_some(self, client):
        """Publish up to ``window`` events after the cursor; return how many went."""
        outbox = self.agent.outbox
        pids = []
        last = self.cursor
        for seq, topic, payload in outbox.pending(after_seq=self.cursor, limit=self.window):
            if payload is None:  # unreadable on flash: declare that seq lost, signed
                self.stats["unreadable_records"] += 1
                agent = self.agent
                topic = agent.t_evt
                payload = agent.seal(topic, envelope.make(
                    agent.device_id, agent.boot, seq, agent.hal.now_ms(), "gap",
                    {"reason": "unreadable"}))
            elif not self._current_key(payload):
                payload = self._reseal(topic, payload)
            pids.append(await client.publish(topic, payload, qos=1, wait=False))
            last = seq
        for pid in pids:
            await client.wait_ack(pid)
        self.stats["sent"] += len(pids)
        if last != self.cursor:
            if self.cursor <= outbox.acked():
                self.last_ack_move = self.agent.hal.ticks_ms()
            self.cursor = max(self.cursor, last)
        return len(pids)

    def _current_key(self, payload):
        """True when a stored event is signed with the key this device holds now."""
        cut = payload.rfind(b"\n")
        kid = self.agent.key_id.encode()
        return payload[cut + 1:cut + 2 + len(kid)] == kid + b":"

    def _reseal(self, topic, payload):
        """Sign an event stored under an older key again with the current one.

        After a key rotation the old key expires: events still in the outbox from before
        would be refused as ``expired_key`` for ever. The content and seq stay the same."""
        self.stats["resealed"] += 1
        fields = json.loads(payload[:payload.rfind(b"\n")])
        return self.agent.seal(topic, fields)

    async def _idle(self):
        agent = self.agent
        hal = agent.hal
        if self.cursor > agent.outbox.acked():
            waited = hal.ticks_diff(hal.ticks_ms(), self.last_ack_move)
            if waited > self.resend_after_ms:
                self.stats["resends"] += 1
                agent.log("no ack for %d ms: resending from seq %d" % (waited,
                                                                       agent.outbox.acked() + 1))
                self.cursor = agent.outbox.acked()
                self.last_ack_move = hal.ticks_ms()
                return
        agent.wake.clear()
        try:
            await asyncio.wait_for(agent.wake.wait(), IDLE_WAIT_S)
        except asyncio.TimeoutError:
            pass

    async def publish_health(self, body):
        """Publish one health sample with QoS 0 if connected; never raises."""
        client = self.client
        if client is None or not client.connected:
            return False
        self.tele_seq += 1
        agent = self.agent
        fields = envelope.make(agent.device_id, agent.boot, self.tele_seq, agent.hal.now_ms(),
                               "health", body)
        try:
            await client.publish(self.t_tele, agent.seal(self.t_tele, fields), qos=0)
        except (MQTTError, OSError):
            return False
        self.stats["health_sent"] += 1
        return True
