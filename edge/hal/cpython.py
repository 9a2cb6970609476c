"""MicroPython's tick and sleep functions for CPython, so edge code runs in both."""

import asyncio
import time


def ticks_ms():
    return time.monotonic_ns() // 1000000


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b


async def sleep_ms(ms):
    await asyncio.sleep(ms / 1000)


class _TLSSocket:
    """CPython's ssl behind MicroPython's TLS socket manners (tests only, never on a device).

    CPython wraps only a connected socket (an unconnected one would send in clear), so the
    wrap waits for the non-blocking connect; send/recv return None while TLS would block.
    """

    def __init__(self, raw, ctx, host):
        self.raw, self.ctx, self.host = raw, ctx, host
        self.s = None
        self.done = False

    def _ready(self):
        import errno
        import socket
        import ssl

        if self.s is None:
            err = self.raw.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect failed")
            try:
                self.raw.getpeername()
            except OSError as e:
                if e.errno == errno.ENOTCONN:
                    return False
                raise
            self.s = self.ctx.wrap_socket(self.raw, server_hostname=self.host,
                                          do_handshake_on_connect=False)
        if not self.done:
            try:
                self.s.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            except ssl.SSLError as e:  # as MicroPython's mbedTLS: a ValueError with the why
                raise ValueError(str(e)) from e
            self.done = True
        return True

    def send(self, data):
        import ssl

        try:
            return self.s.send(data) if self._ready() else None
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None

    def recv(self, n):
        import ssl

        try:
            return self.s.recv(n) if self._ready() else None
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except ssl.SSLZeroReturnError:
            return b""

    def close(self):
        (self.s or self.raw).close()


def tls_context(ca):
    """A TLS client context that trusts only the CA certificate ``ca`` (DER bytes)."""
    import ssl

    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # also checks the host name
    c.verify_mode = ssl.CERT_REQUIRED
    c.load_verify_locations(cadata=ca)
    return c


def tls_wrap(s, ctx, host):
    """``s`` (non-blocking, connecting) as a TLS socket to ``host`` once it connects."""
    return _TLSSocket(s, ctx, host)
