"""Hardware abstraction for the unix port (and CPython): clocks, memory, watchdog, logging.

The ESP32 HAL offers the same names over ``machine`` and the RTC; the agent only
imports ``edge.hal`` through ``edge.hal.select``.
"""

import asyncio
import gc
import sys
import time

try:
    from time import ticks_add, ticks_diff, ticks_ms  # MicroPython

    sleep_ms = asyncio.sleep_ms
except ImportError:  # CPython: the same names, in a module the firmware never loads
    from edge.hal.cpython import sleep_ms, ticks_add, ticks_diff, ticks_ms

NAME = "unix"


_skew_ms = 0


def set_clock_skew(ms):
    """Make this device's clock wrong by ``ms`` (config ``clock_skew_ms``): the unix
    stand-in for a board whose RTC was never set or drifted, used by the fault tests."""
    global _skew_ms
    _skew_ms = ms


def now_ms():
    """Wall-clock time in ms since the Unix epoch (the envelope's ``ts``)."""
    return time.time_ns() // 1000000 + _skew_ms


def mem_free():
    """Free heap bytes, or -1 where the interpreter cannot say (CPython)."""
    return gc.mem_free() if hasattr(gc, "mem_free") else -1


def collect():
    gc.collect()


class Watchdog:
    """No hardware watchdog on unix: feeding it is a no-op (the ESP32 HAL uses machine.WDT)."""

    def __init__(self, timeout_ms=30000):
        self.timeout_ms = timeout_ms

    def feed(self):
        pass


def stamp(ms):
    """``ms`` since the Unix epoch as UTC text for logs: 2026-11-30T18:05:01.123Z."""
    t = time.gmtime(ms // 1000)
    return "%d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)


def log(*parts):
    """One line on stdout, prefixed with the device's wall time (``stamp``)."""
    print(stamp(now_ms()), *parts)
    try:
        sys.stdout.flush()
    except AttributeError:
        pass


__all__ = ["NAME", "Watchdog", "collect", "log", "mem_free", "now_ms", "sleep_ms", "stamp",
           "ticks_add", "ticks_diff", "ticks_ms"]
