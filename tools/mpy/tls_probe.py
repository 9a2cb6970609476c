# Run by tools/tls_cost.py under micropython -X heapsize=96K from the firmware image:
#   tls_probe.py HOST PORT N [CA_DER_FILE]
# Connects the firmware's MQTT client N times (over TLS when a CA file is given) and
# prints one JSON line: heap taken by the TLS context, by one open connection, and the
# time from connect() to CONNACK of each connection.
import asyncio
import gc
import json
import sys
from time import ticks_diff, ticks_ms

from edge.net import sock
from edge.net.mqtt import MQTTClient


async def main(host, port, n, ca_path):
    gc.collect()
    before = gc.mem_free()
    ctx = None
    if ca_path:
        with open(ca_path, "rb") as f:
            ctx = sock.context(f.read())
    gc.collect()
    context = before - gc.mem_free()
    c = MQTTClient("tls-cost", host, port, keepalive=0, tls=ctx)
    times, held = [], []
    for _ in range(n):
        gc.collect()
        idle = gc.mem_free()
        t = ticks_ms()
        await c.connect()
        times.append(ticks_diff(ticks_ms(), t))
        gc.collect()
        held.append(idle - gc.mem_free())
        await c.disconnect()
    print(json.dumps({"context_bytes": context, "connection_bytes": held, "connect_ms": times}))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                 sys.argv[4] if len(sys.argv) > 4 else None))
