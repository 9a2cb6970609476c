"""Firmware entry point: ``micropython -X heapsize=96K -m edge.main CONFIG.json``."""

import asyncio
import gc
import sys

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
    agent = Agent(cfg, hal)
    try:
        asyncio.run(agent.run())
    except KeyboardInterrupt:
        agent.log("stopped")


main(sys.argv)
