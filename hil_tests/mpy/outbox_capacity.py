"""How many weighings the agent's default outbox holds, as the agent stores them.

Run: MICROPYPATH=<firmware image>:.frozen micropython -X heapsize=96K outbox_capacity.py DIR
[DEVICE_ID SITE] (default wb-1 hil: the rig's; each character of either is a byte more
in every record)
Fills fresh default outboxes (256 KiB) through ``Agent.emit`` with weighings shaped as the
detector emits them (plates of 5 to 10 bytes of UTF-8, 13-digit device times), until the
first refusal; then alarms until the first refusal followed by weighings (the reserve).
Prints one JSON line.
"""

import json
import sys

from edge.agent import Agent
from edge.hal import unix as hal

T0 = 1764072000000
PLATES = ("B1234", "辽B123", "辽B12345", "辽B1234567")  # 5, 7, 9 and 11 bytes of UTF-8


def agent(d, n):
    dev = sys.argv[2] if len(sys.argv) > 3 else "wb-1"
    cfg = {"device_id": dev, "site": sys.argv[3] if len(sys.argv) > 3 else "hil",
           "kind": "weighbridge", "key_id": "k1",
           "secret_hex": "11" * 32, "data_dir": "%s/%d" % (d, n), "driver": {"type": "none"},
           "mqtt": {"host": "127.0.0.1", "port": 1883, "user": dev, "password": "x",
                    "keepalive": 30},
           "window": 8, "resend_after_s": 10, "health_interval_s": 10,
           "outbox_max_bytes": 256 * 1024}
    a = Agent(cfg, hal)
    a.log = lambda *parts: None
    return a


def weighing(plate, i):
    return {"plate": plate, "gross_kg": 30000 + 20 * (i % 2000), "tare_kg": 14020,
            "net_kg": 15980 + 20 * (i % 2000), "division_kg": 20, "stable_ms": 3000,
            "arrived_ts": T0 + 60000 * i, "model": "portwatch-sim",
            # the weight curve summary as the agent sends it (about 70 readings at 100 ms)
            "curve": [70 + i % 30, 4100 + 20 * (i % 50), 20, i % 3, 0]}


def fill(a, kind, make, arg=None):
    n = 0
    while a.emit(kind, make(arg, n)) is not None:
        n += 1
    return n


def main(d):
    counts = []
    sizes = []
    for k in range(len(PLATES)):
        a = agent(d, k)
        counts.append(fill(a, "weighing", weighing, PLATES[k]))
        sizes.append(a.outbox.backlog()[1] // counts[-1])
    a = agent(d, len(PLATES))
    alarms = fill(a, "alarm", lambda _, i: {"alarm": "indicator_frozen", "state": "raised",
                                            "detail": {"heartbeat": i}})
    after = fill(a, "weighing", weighing, PLATES[2])
    print(json.dumps({"weighings": counts, "weighings_min": min(counts),
                      "weighings_max": max(counts), "record_bytes_min": min(sizes),
                      "record_bytes_max": max(sizes), "alarms": alarms,
                      "alarms_then_weighings": after}))


main(sys.argv[1])
