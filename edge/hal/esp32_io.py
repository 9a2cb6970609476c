"""ESP32 peripherals that only some agents, or only the boot, need: loaded when used, so
the HAL every agent keeps (edge/hal/esp32.py) stays small on a 96 KiB heap.

Tested under the unix port with a fake ``machine`` (tests/tools/test_esp32_hal.py): the
calls, not the wiring (README, Deploy to a board: Wiring).
"""

_timer = None


def keep_fed(hal):
    """Feed the watchdog that ``hal`` (edge.hal.esp32) armed from a hardware timer, every
    10 s from now on: after the agent stopped (Ctrl-C from mpremote, a bad config) the
    board sits at the REPL, and machine.WDT cannot be disarmed on an ESP32; without this a
    deploy's copy would be cut by a reset 30 s in."""
    global _timer
    wdt = hal._wdt
    if wdt is None or _timer is not None:
        return
    from machine import Timer

    _timer = Timer(0)
    _timer.init(period=10000, mode=Timer.PERIODIC, callback=lambda t: wdt.feed())


def rs485_open(source):
    """An RS-485 port (a weighing indicator's Modbus RTU) through a transceiver on a UART:
    ``rs485:<id>:<baud>:<tx>:<rx>[:<de>]``, 8N1. ``de``: the transceiver's DE/RE pin,
    driven high while sending (``write`` waits for the last bit to leave); boards with an
    auto-direction transceiver leave it out. Returns an object with ``read`` and
    ``write``, like ``serial_open``'s."""
    from machine import UART, Pin

    p = source.split(":")
    if len(p) not in (5, 6) or p[0] != "rs485":
        raise ValueError("source", source)
    uart = UART(int(p[1]), baudrate=int(p[2]), tx=int(p[3]), rx=int(p[4]), bits=8,
                parity=None, stop=1, timeout=0, rxbuf=512)
    if len(p) == 5:
        return uart
    return _HalfDuplex(uart, Pin(int(p[5]), Pin.OUT, value=0))


class _HalfDuplex:
    """A UART behind a transceiver whose direction pin the firmware drives."""

    def __init__(self, uart, de):
        self.uart, self.de = uart, de

    def read(self, n=-1):
        return self.uart.read() if n < 0 else self.uart.read(n)

    def write(self, data):
        self.de.value(1)
        try:
            n = self.uart.write(data)
            self.uart.flush()  # returns once the last stop bit is out: then release the bus
        finally:
            self.de.value(0)
        return n


def i2c_open(sda=21, scl=22, freq=100000, bus=0):
    """The I2C bus of the secure element (ATECC608 at 0x60; docs/ESP32.md: wiring): GPIO21
    SDA and GPIO22 SCL, 100 kHz, with 4.7 kOhm pull-ups on the board."""
    from machine import I2C, Pin

    return I2C(bus, sda=Pin(sda), scl=Pin(scl), freq=freq)
