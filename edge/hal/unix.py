"""Hardware abstraction for the unix port (and CPython): clocks, memory, watchdog, logging.

The ESP32 HAL offers the same names over ``machine`` and the RTC; the agent only
imports ``edge.hal`` through ``edge.hal.select``. Few functions and no class: on the
device every one costs heap.
"""

import gc
import sys
import time

try:
    from asyncio import sleep_ms
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: the same names, in a module the firmware never loads
    from edge.hal.cpython import sleep_ms, ticks_add, ticks_diff, ticks_ms  # noqa: F401

NAME = "unix"
_skew_ms = 0

# free heap bytes, or -1 where the interpreter cannot say (CPython)
mem_free = getattr(gc, "mem_free", None) or (lambda: -1)


def set_clock_skew(ms):
    """Make this device's clock wrong by ``ms`` (config ``clock_skew_ms``): the unix
    stand-in for a board whose RTC was never set or drifted, used by the fault tests."""
    global _skew_ms
    _skew_ms = ms


def now_ms():
    """Wall-clock time in ms since the Unix epoch (the envelope's ``ts``)."""
    return time.time_ns() // 1000000 + _skew_ms


def feed():
    """Feed the watchdog: there is none on unix (the ESP32 HAL arms machine.WDT)."""


def serial_open(source):
    """No UART here: a GPS source on unix is ``tcp:<host>:<port>`` (an emulator's stream),
    which edge/drivers/tracker.py opens itself; the ESP32 HAL opens ``uart:...``."""
    raise ValueError("no UART on the unix port; use tcp:<host>:<port>", source)


def stamp(ms):
    """``ms`` since the Unix epoch as UTC text for logs: 2026-11-30T18:05:01.123Z."""
    t = time.gmtime(ms // 1000)
    return "%d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)


def log(*parts):
    """One line on stdout, prefixed with the device's wall time (``stamp``)."""
    print(stamp(now_ms()), *parts)
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()
