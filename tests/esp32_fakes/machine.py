# FAKE `machine` module for tests (MicroPython): records what the ESP32 HAL asks of the
# pins, UARTs, I2C bus, watchdog and timer. Nothing here runs on a board.
CALLS = []


class Pin:
    IN = 1
    OUT = 3

    def __init__(self, n, mode=None, value=None):
        self.n = n
        if mode is not None:
            CALLS.append(["Pin", n, mode, value])

    def value(self, v=None):
        if v is None:
            return 0
        CALLS.append(["Pin.value", self.n, v])

    def __repr__(self):
        return "Pin(" + str(self.n) + ")"


class UART:
    def __init__(self, n, **kw):
        CALLS.append(["UART", n, sorted((k, repr(v)) for k, v in kw.items())])

    def write(self, data):
        CALLS.append(["UART.write", data.decode()])
        return len(data)

    def flush(self):
        CALLS.append(["UART.flush"])

    def read(self, n=None):
        return None


class I2C:
    def __init__(self, n, **kw):
        CALLS.append(["I2C", n, sorted((k, repr(v)) for k, v in kw.items())])


class WDT:
    def __init__(self, timeout):
        CALLS.append(["WDT", timeout])

    def feed(self):
        CALLS.append(["WDT.feed"])


class Timer:
    PERIODIC = 1
    last = None

    def __init__(self, n):
        CALLS.append(["Timer", n])
        Timer.last = self

    def init(self, period, mode, callback):
        CALLS.append(["Timer.init", period, mode])
        self.callback = callback
