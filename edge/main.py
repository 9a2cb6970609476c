"""Firmware entry point: ``micropython -X heapsize=96K -m edge.main CONFIG.json``."""

# Every module is imported here, before anything long-lived is allocated: the code then
# sits in one block at the bottom of the 96 KiB heap instead of between buffers, which
# would fragment it (MicroPython's GC does not compact).
import asyncio
import gc
import sys

# Bytes of the buffer a custody event is signed in, per driver type (config:
# ``driver.event_bytes``): the biggest event the driver makes, signature lines included.
# A 40-car train is 2.5 KB on the wire (64 cars 3 KB). Signed the allocating way it needed
# three pieces of heap its size at once, which the rail agent's heap, fragmented by a TLS
# session, did not always have (edge/FAILURES.md, Rail reader); so the buffer is made first
# of all, at the bottom of the heap (edge/seal_into.py signs in it, the outbox stores from
# it, the uplink sends it from flash piece by piece: edge/outbox_spill.py). The other
# agents' events (0.5-1 KB) are signed as parts (edge.signer ``seal(parts=True)``): their
# heap was measured so, and they have more of it to spare.
EVENT_BYTES = {"rail": 3072}
# Agents whose signing code is loaded here, after the buffer and before the rest, and kept
# (edge.signer p256); the others load it for each signature.
RESIDENT_P256 = ("rail",)


def _driver(path):
    """The config's driver type and event buffer size, peeked at before the imports (its
    dict is freed before any code settles in); a config that does not read is reported by
    edge.config below."""
    import json

    try:
        with open(path) as f:
            d = json.load(f)["driver"]
        t = d["type"]
        n = d.get("event_bytes", EVENT_BYTES.get(t, 0))
        return t, (n if type(n) is int and 0 <= n <= 16384 else 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "", 0


# only the driver the config names: a tracker does not carry the weighbridge's Modbus code
_TYPE, _EV = _driver(sys.argv[1] if len(sys.argv) > 1 else "config.json")
gc.collect()
_EBUF = bytearray(_EV) if _EV else None
if _TYPE in RESIDENT_P256:
    import protocols.p256  # noqa: F401
if _EV:  # sealing in the buffer, sending from flash in pieces
    import edge.outbox_spill
    import edge.seal_into
if _TYPE == "tracker":
    import edge.drivers.tracker
elif _TYPE == "lab":
    import edge.drivers.lab
elif _TYPE == "rail":
    import edge.drivers.rail
else:
    import edge.drivers.weighbridge
gc.collect()
import edge.uplink  # noqa: E402, F401
from edge.agent import Agent  # noqa: E402


def main(argv):
    import edge.config
    import edge.hal.select

    path = argv[1] if len(argv) > 1 else "config.json"
    hal = edge.hal.select.load()
    try:
        cfg = edge.config.load(path)
    except edge.config.ConfigError as exc:
        print("portwatch agent: bad config:", exc)
        print("fix it, or write a new one with `portwatch device add`")
        sys.exit(2)
    agent = Agent(cfg, hal)
    if _EBUF is not None:
        edge.seal_into.install(agent.signer, _EBUF)
    cfg = None  # the agent keeps only the settings it uses: the dict leaves the heap
    # used only at boot (the config's loader and checker, the HAL's selector): unreferenced
    # from here on, their code leaves the heap (3 KB; edge/FAILURES.md, Heap)
    for pkg, name in (("edge", "config"), ("edge.hal", "select")):
        sys.modules.pop(pkg + "." + name, None)
        delattr(sys.modules[pkg], name)
    gc.collect()
    if hasattr(gc, "threshold"):
        gc.threshold(8192)  # collect early and often: holes are reused before they scatter
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        agent.log("stopped")


main(sys.argv)
