# Runs under MicroPython: import the named modules in order, print each one's heap cost as JSON.
import gc
import json
import sys

gc.collect()
start = gc.mem_free()
out = {}
for name in sys.argv[1:]:
    gc.collect()
    before = gc.mem_free()
    __import__(name)
    gc.collect()
    out[name] = before - gc.mem_free()
gc.collect()
out["total"] = start - gc.mem_free()
print(json.dumps(out))
