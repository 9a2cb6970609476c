"""Hardware abstraction for ESP32-class boards: RTC time, machine.WDT, UART, I2C.

No board in CI: it is compiled with mpy-cross and offers the same names as
``edge.hal.unix``; tests/edge/test_esp32_net.py runs it under the unix port with fake
``machine`` and ``network`` modules (the calls, not the hardware). The network and the
clock are brought up at boot by edge/hal/esp32_net.py
(edge/boot.py). MicroPython's embedded epoch is 2000-01-01, so ``now_ms`` adds the offset
to the Unix epoch once the RTC has been set from NTP (until then ``ts`` is flagged by the
controller as a clock offset). The device key's place on a board, a secure element
(ATECC608 over I2C: wiring and commands), is described in docs/ESP32.md. What only
some agents or only the boot need (RS-485, I2C, the watchdog at the REPL) is in
edge/hal/esp32_io.py: this module stays on the heap of every agent.
"""

import gc
import sys
import time
from asyncio import sleep_ms  # noqa: F401  (re-exported)
from time import ticks_add, ticks_diff, ticks_ms  # noqa: F401  (re-exported)

NAME = "esp32"
_EPOCH_OFFSET_S = 946684800  # 2000-01-01 minus 1970-01-01


def now_ms():
    base = time.time()
    if base < _EPOCH_OFFSET_S:  # embedded epoch
        base += _EPOCH_OFFSET_S
    return int(base) * 1000 + (ticks_ms() % 1000)


def mem_free():
    return gc.mem_free()


_wdt = None


def feed():
    """Feed machine.WDT, arming it (30 s) at the first call: the agent feeds it from its
    health task, so a hung event loop resets the board."""
    global _wdt
    if _wdt is None:
        from machine import WDT
        _wdt = WDT(timeout=30000)
    _wdt.feed()


def stamp(ms):
    """``ms`` since the Unix epoch as UTC text for logs: 2026-11-30T18:05:01.123Z."""
    s = ms // 1000
    if time.gmtime(0)[0] == 2000:  # embedded epoch: gmtime counts from 2000-01-01
        s -= _EPOCH_OFFSET_S
    t = time.gmtime(s)
    return "%d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (t[0], t[1], t[2], t[3], t[4], t[5], ms % 1000)


def log(*parts):
    print(stamp(now_ms()), *parts)
    sys.stdout.flush() if hasattr(sys.stdout, "flush") else None


def serial_open(source):
    """The GNSS receiver's UART, ``uart:<id>:<baud>:<tx>:<rx>`` (edge/drivers/tracker.py),
    8N1, read without waiting (``read`` gives None when nothing came). Not run in CI."""
    from machine import UART

    p = source.split(":")
    if len(p) != 5 or p[0] != "uart":
        raise ValueError("source", source)
    return UART(int(p[1]), baudrate=int(p[2]), tx=int(p[3]), rx=int(p[4]), timeout=0,
                rxbuf=1024)


def read_io(pins):
    """(ignition, external power, case open) from the GPIO inputs ``pins`` names
    (``{"ign": n, "ext_power": n, "tamper": n}``; 1 = on, present, open)."""
    from machine import Pin

    return tuple(Pin(pins[k], Pin.IN).value() == 1 for k in ("ign", "ext_power", "tamper"))

