# Runs under MicroPython: import the named modules in order, print each one's heap cost as
# JSON, then the interned-string (qstr) pool's state as MicroPython reports it.
import gc
import json
import sys

import micropython

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
micropython.qstr_info()  # "qstr pool: n_pool=5, n_qstr=586, ...": parsed by tools/footprint.py
print(json.dumps(out))
