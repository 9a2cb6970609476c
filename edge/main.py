"""Firmware entry point: ``micropython -X heapsize=96K -m edge.main CONFIG.json``."""

# Every module is imported here, before anything long-lived is allocated: the code then
# sits in one block at the bottom of the 96 KiB heap instead of between buffers, which
# would fragment it (MicroPython's GC does not compact).
import asyncio
import gc
import sys


def _driver_type(path):
    """The config's driver type, peeked at before the imports (its dict is freed before
    any code settles in); a config that does not read is reported by edge.config below."""
    import json

    try:
        with open(path) as f:
            return json.load(f)["driver"]["type"]
    except (OSError, ValueError, KeyError, TypeError):
        return ""


# only the driver the config names: a tracker does not carry the weighbridge's Modbus code
_TYPE = _driver_type(sys.argv[1] if len(sys.argv) > 1 else "config.json")
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
