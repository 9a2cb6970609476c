"""Drive edge.net.mqtt against a real broker, for hil_tests/test_edge_mqtt_client.py.

Runs under ``micropython -X heapsize=96K`` (or CPython) with MICROPYPATH holding the
repository root and ``.frozen``. Prints one line per event on stdout, which the test
reads:  micropython mqtt_probe.py SCENARIO HOST PORT CLIENT_ID [ARGS...]

Scenarios: basic, will, auth USER PASSWORD, lost KEEPALIVE CONNECT_TIMEOUT.
Every topic is under pw/t/<client_id>/.
"""

import gc
import sys

try:
    _free = gc.mem_free
except AttributeError:  # CPython

    def _free():
        return -1


gc.collect()
_MEM_START = _free()

import asyncio  # noqa: E402

_ = (asyncio.Event, asyncio.Lock, asyncio.open_connection, asyncio.wait_for)  # lazy parts
gc.collect()
_MEM_ASYNCIO = _free()

from edge.net.mqtt import (  # noqa: E402
    ConnectionLost,
    ConnectRefused,
    MQTTClient,
    MQTTError,
)

gc.collect()
_MEM_IMPORTED = _free()


def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


def _hex(data):
    return "".join(f"{b:02x}" for b in data) or "-"


def _mem(tag):
    gc.collect()
    say("MEM", tag, _MEM_START, _free())


class Inbox:
    """What on_message received, in order; the client itself keeps no queue."""

    def __init__(self):
        self.items = []
        self.ev = asyncio.Event()

    def __call__(self, topic, payload, retained):
        self.items.append((topic, payload, retained))
        self.ev.set()

    async def get(self, client, poll_s=0.05):
        """The next message, or ConnectionLost once the client's link is down.

        Polls ``client.connected`` like the agent's uplink loop does between messages.
        """
        while not self.items:
            if not client.connected:
                raise ConnectionLost(client.last_error)
            self.ev.clear()
            try:
                await asyncio.wait_for(self.ev.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
        return self.items.pop(0)


async def basic(host, port, cid):
    base = f"pw/t/{cid}/"
    say("MEM", "asyncio", _MEM_START, _MEM_ASYNCIO)
    say("MEM", "imported", _MEM_START, _MEM_IMPORTED)
    _mem("running")
    inbox = Inbox()
    c = MQTTClient(cid, host, port, keepalive=10, will=(base + "state", b"offline", 1, True),
                   max_payload=4096, max_inflight=8, on_message=inbox)
    _mem("constructed")
    say("CONNECTED", int(await c.connect()))
    _mem("connected")
    say("SUBSCRIBED", await c.subscribe(base + "cmd", 1), await c.subscribe(base + "cmd0", 0))
    await c.publish(base + "state", b"online", qos=1, retain=True)
    await c.publish(base + "q0", b"hello-q0", qos=0)
    say("PUBACK", await c.publish(base + "q1", bytes(range(256)), qos=1))
    # Stream a backlog with a bounded window, as the agent does after reconnecting.
    pending = []
    codes = 0  # sum of the PUBACK return codes: 0 when every one came
    for i in range(40):
        if len(pending) == 8:
            codes += await c.wait_ack(pending.pop(0))
        pending.append(await c.publish(base + "burst", b"%d" % i, qos=1, wait=False))
    for pid in pending:
        codes += await c.wait_ack(pid)
    say("BURST", 40, codes)
    _mem("after-burst")
    say("READY")
    while True:
        topic, payload, retained = await inbox.get(c)
        say("RECV", topic, _hex(payload[:64]), len(payload), int(retained))
        if payload == b"stop":
            break
        await c.publish(base + "echo", payload, qos=1)
    _mem("after-echo")
    st = c.stats
    say("STATS", st["dropped_oversize"], st["callback_errors"], st["pings"], st["timeouts"])
    await c.disconnect()
    say("BYE", int(c.connected))


async def will(host, port, cid):
    base = f"pw/t/{cid}/"
    c = MQTTClient(cid, host, port, keepalive=30, will=(base + "state", b"offline", 1, True),
                   on_message=lambda t, p, r: say("RECV", t, _hex(p), len(p), int(r)))
    await c.connect()
    await c.subscribe(base + "cmd", 1)
    await c.publish(base + "state", b"online", qos=1, retain=True)
    say("CONNECTED")
    while True:  # until killed
        await asyncio.sleep(1)


async def auth(host, port, cid, user, password):
    c = MQTTClient(cid, host, port, user=user, password=password)
    try:
        await c.connect()
    except ConnectRefused as exc:
        say("REFUSED", exc.code, isinstance(exc, MQTTError), int(c.connected), str(exc))
        return
    say("CONNECTED")
    await c.disconnect()


async def lost(host, port, cid, keepalive, connect_timeout):
    base = f"pw/t/{cid}/"
    inbox = Inbox()
    c = MQTTClient(cid, host, port, keepalive=keepalive, connect_timeout=connect_timeout,
                   on_message=inbox)
    await c.connect()
    links = 0
    while True:
        try:
            await c.subscribe(base + "cmd", 1)
            await c.publish(base + "alive", b"%d" % links, qos=1)
            say("LINKED", links)
            while True:
                _topic, payload, _retained = await inbox.get(c)
                if payload == b"stop":
                    st = c.stats
                    say("STATS", st["links_lost"], st["pings"], st["timeouts"])
                    await c.disconnect()
                    say("BYE")
                    return
        except ConnectionLost:
            say("LOST", int(c.connected), c.last_error)
        while True:
            try:
                await c.connect()
                links += 1
                break
            except MQTTError as exc:
                say("RETRY", type(exc).__name__)
                await asyncio.sleep(0.2)


def main(argv):
    scenario, host, port, cid = argv[1], argv[2], int(argv[3]), argv[4]
    rest = argv[5:]
    if scenario == "basic":
        coro = basic(host, port, cid)
    elif scenario == "will":
        coro = will(host, port, cid)
    elif scenario == "auth":
        coro = auth(host, port, cid, rest[0], rest[1])
    elif scenario == "lost":
        coro = lost(host, port, cid, int(rest[0]), int(rest[1]))
    else:
        raise SystemExit("unknown scenario " + scenario)
    asyncio.run(coro)


main(sys.argv)
