"""Start the agent on a board: the network and the clock, then ``edge.main``.

The board's ``/main.py`` (tools/mpy/board_main.py) imports this module. The network code
(edge/hal/esp32_net.py) and the config checker run first and leave the heap before
``edge.main`` imports the agent's modules, so the long-lived code still settles at the
bottom of a clean heap (edge/main.py). A network that does not come up does not stop the
agent: it weighs and stores offline, and the WLAN keeps reconnecting by itself.
"""

import gc
import sys

CONFIG = "config.json"


def start(path=CONFIG):
    """Bring the network up and set the clock from the config at ``path``, then run the
    agent until it stops (Ctrl-C from mpremote: the watchdog is then kept fed)."""
    from edge.hal import esp32, esp32_net

    try:
        esp32_net.up_from_config(path, esp32.log)
    except Exception as exc:  # a bad config is reported again, and stops, in edge.main
        esp32.log("network: not started:", repr(exc))
    for name in ("edge.hal.esp32_net", "edge.config"):
        sys.modules.pop(name, None)
    esp32_net = None
    gc.collect()
    del sys.argv[:]
    sys.argv.extend(("edge.main", path))
    try:
        import edge.main  # noqa: F401  (runs the agent)
    finally:
        esp32.keep_fed()  # at the REPL (a deploy, a bad config): no watchdog reset mid-copy


start()
