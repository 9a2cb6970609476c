# Runs under MicroPython (the unix port, or a board: `mpremote run`): what the device
# signature costs. Prints one JSON line: the import's heap; the bytes one signature
# allocates (short-lived big integers and hash states of 32-160 bytes: the churn the GC
# collects); the time of one public key and of N signatures (us), first on an empty heap,
# then loaded and freed for each call as the agent does (edge.signer.p256), then "as in the
# agent": the heap filled with small live objects down to 16 KB free and gc.threshold(8192)
# (edge/main.py), so that each signature pays for the collections its churn sets off.
import gc
import json
import sys
import time

import micropython

gc.collect()
before = gc.mem_free()
from protocols import p256  # noqa: E402

gc.collect()
out = {"import_bytes": before - gc.mem_free()}
n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
d = p256.scalar(b"\x5a" * 32)  # a TEST FIXTURE key
topic = b"pw/v1/hil/wb-1/evt"
body = ('{"v": 1, "dev": "wb-1", "boot": 2, "seq": %d, "ts": 1764072000123, "kind": '
        '"weighing", "body": {"plate": "\\u8fbdB12345", "gross_kg": 45230, "tare_kg": 15100, '
        '"net_kg": 30130, "division_kg": 20, "stable_ms": 3000, "arrived_ts": 1764071990000, '
        '"model": "portwatch-sim"}}')


def one(i):
    return p256.sign(d, b"pw1-dev\n", topic, b"\n", (body % i).encode())


def timed(runs):
    times = []
    for i in range(runs):
        t = time.ticks_us()
        one(i)
        times.append(time.ticks_diff(time.ticks_us(), t))
    times.sort()
    return {"n": runs, "min": times[0], "median": times[runs // 2], "max": times[-1]}


one(0)
total = micropython.mem_total()
for i in range(10):
    one(i)
out["allocated_per_sign"] = (micropython.mem_total() - total) // 10
t = time.ticks_us()
p256.public(d)
out["public_us"] = time.ticks_diff(time.ticks_us(), t)
out["sign_us"] = timed(n)
# as the agent signs: edge.signer.p256 loads the module for the call and frees it after
try:
    from edge.signer import p256 as per_use
except ImportError:  # run from protocols/ alone (a board without the edge package)
    per_use = None
if per_use is not None:
    times = []
    for i in range(n):
        t = time.ticks_us()
        per_use("sign", d, b"pw1-dev\n", topic, b"\n", (body % i).encode())
        times.append(time.ticks_diff(time.ticks_us(), t))
    times.sort()
    out["sign_us_per_use"] = {"n": n, "min": times[0], "median": times[n // 2],
                              "max": times[-1]}
# as in the agent: ~16 KB free among many small live objects, a collection every 8 KB
ballast = None
i = 0
gc.collect()
while gc.mem_free() > 16 * 1024:
    # a chain of small objects (one GC block each on a 64-bit port, like most of the
    # agent's), not a list: that would want one large piece itself
    ballast = (ballast, bytes(8))
    i += 1
gc.collect()
out["agent_like_free"] = gc.mem_free()
out["agent_like_objects"] = i
if hasattr(gc, "threshold"):
    gc.threshold(8192)
if per_use is not None:
    one = lambda i: per_use("sign", d, b"pw1-dev\n", topic, b"\n", (body % i).encode())  # noqa: E731
out["sign_us_agent_like"] = timed(n)
print(json.dumps(out))
