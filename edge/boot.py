"""Start the agent on a board: the network and the clock, then ``edge.main``.

The board's ``/main.py`` (tools/mpy/board_main.py) imports this module. The network code
(edge/hal/esp32_net.py) and the config checker run first and leave the heap, sys.modules
and their packages' attributes (as edge/main.py frees its boot-only modules) before
``edge.main`` imports the agent's modules, so the long-lived code still settles at the
bottom of a clean heap. A network that does not come up does not stop the agent: it
stores events offline, and the ESP32's WLAN keeps reconnecting by itself. On the unix port
(the deploy tests) the host has the network: only the agent starts.
"""

import gc
import sys

CONFIG = "config.json"


def _free(*names):
    for name in names:
        pkg, _, attr = name.rpartition(".")
        sys.modules.pop(name, None)
        if pkg in sys.modules and hasattr(sys.modules[pkg], attr):
            delattr(sys.modules[pkg], attr)


def _network(path):
    from edge.hal import select

    hal = select.load()
    if hal.NAME != "esp32":
        hal.log("network: the host's (%s port)" % hal.NAME)
        return hal.NAME
    from edge.hal import esp32_net

    try:
        esp32_net.up_from_config(path, hal.log)
    except Exception as exc:  # a bad config is reported again, and stops, in edge.main
        hal.log("network: not started:", repr(exc))
    return hal.NAME


def start(path=CONFIG):
    """Bring the network up and set the clock from the config at ``path``, then run the
    agent until it stops (Ctrl-C from mpremote: the watchdog is then kept fed)."""
    port = _network(path)
    _free("edge.hal.esp32_net", "edge.config_net", "edge.config", "edge.hal.select")
    gc.collect()
    del sys.argv[:]
    sys.argv.extend(("edge.main", path))
    try:
        import edge.main  # noqa: F401  (runs the agent)
    finally:
        if port == "esp32":  # at the REPL now (a deploy, a bad config): no reset mid-copy
            from edge.hal import esp32, esp32_io

            esp32_io.keep_fed(esp32)


start()
