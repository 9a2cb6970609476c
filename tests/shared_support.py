"""Helpers for tests that run under both pytest and MicroPython (no pytest features)."""

import os


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def make_tmpdir(tag="t"):
    """Create and return a fresh empty directory under /tmp."""
    base = "/tmp/pw-test-" + tag + "-"
    while True:
        suffix = "".join("%02x" % b for b in os.urandom(6))
        path = base + suffix
        if not _exists(path):
            os.mkdir(path)
            return path


def rmtree(path):
    """Remove a directory tree (MicroPython has no shutil)."""
    for entry in os.listdir(path):
        full = path + "/" + entry
        if os.stat(full)[0] & 0x4000:
            rmtree(full)
        else:
            os.remove(full)
    os.rmdir(path)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def repo_root():
    """The repository root, found from this file's location."""
    here = __file__ if __file__.startswith("/") else os.getcwd() + "/" + __file__
    return here.rsplit("/", 2)[0]


def raises(exc_type, fn, *args):
    """Call fn(*args); return the exc_type it raised, or fail the test."""
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError("%s not raised" % exc_type.__name__)


def hexbytes(text):
    """bytes from space-separated hex pairs, as protocol documents print frames."""
    return bytes(int(x, 16) for x in text.split())


async def serve_on_free_port(handler, what="server"):
    """Start an asyncio TCP server on a random free port; return (server, port).

    MicroPython's Server cannot tell the port it got, so random ports are tried."""
    import asyncio

    for _ in range(20):
        port = 20000 + (os.urandom(2)[0] << 8 | os.urandom(1)[0]) % 30000
        try:
            return await asyncio.start_server(handler, "127.0.0.1", port), port
        except OSError:
            continue
    raise OSError("no free port for the " + what)


class FakeClock:
    """The HAL's clock and sleep for firmware tests: ``ticks`` moves only when a test (or a
    sleep) moves it; ``now_ms`` is wall-clock ``t0`` plus the ticks."""

    def __init__(self, t0=1764072000000):
        self.t0 = t0
        self.ticks = 0

    def now_ms(self):
        return self.t0 + self.ticks

    def ticks_ms(self):
        return self.ticks

    def ticks_diff(self, a, b):
        return a - b

    async def sleep_ms(self, ms):
        self.ticks += ms
