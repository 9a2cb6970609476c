"""Firmware entry point: ``micropython -X heapsize=96K -m edge.main CONFIG.json``."""

# Every module is imported here, before anything long-lived is allocated: the code then
# sits in one block at the bottom of the 96 KiB heap instead of between buffers, which
# would fragment it (MicroPython's GC does not compact).
import asyncio
import gc
import sys

import edge.drivers.weighbridge
import edge.uplink  # noqa: F401
from edge import config
from edge.agent import Agent
from edge.hal.select import load as load_hal


def main(argv):
    path = argv[1] if len(argv) > 1 else "config.json"
    hal = load_hal()
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print("portwatch agent: bad config:", exc)
        print("fix it, or write a new one with `portwatch device add`")
        sys.exit(2)
    gc.collect()
    if hasattr(gc, "threshold"):
        gc.threshold(8192)  # collect early and often: holes are reused before they scatter
    agent = Agent(cfg, hal)
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        agent.log("stopped")


main(sys.argv)
