"""Non-blocking TCP for the MQTT client and the Modbus master, without asyncio's streams.

On MicroPython ``asyncio.open_connection`` and ``asyncio.wait_for`` load asyncio's stream
and funcs modules (2.5 KB of heap on the device); these four functions do what the two
clients need with a non-blocking socket, looked at every 2 ms (MicroPython's
``asyncio.sleep_ms`` between tries), and a deadline in ticks. The same code runs on
CPython (tests/edge, hil_tests).

``until`` is a ``ticks_ms()`` deadline or None (no limit); past it the call raises
``asyncio.TimeoutError``. Bytes sent or received before a deadline are not lost: ``send``
leaves off where the socket stopped taking them, ``recv`` returns what came (the caller
keeps it). The peer closing the link raises EOFError; other socket errors go through.
Few module-level names: each is a slot in the module's dict, which grows in steps.

TLS (``context(ca)``, then ``open_socket(..., ctx)``): the broker's certificate must chain
to the one pinned CA (DER bytes) and name ``host``. MicroPython's mbedTLS socket is wrapped
before the TCP connect completes and does the handshake inside its first send/recv, which
return None (not EAGAIN) while it would block; CPython's ssl needs a connected socket, so
there ``edge.hal.cpython.tls_wrap`` gives the same None-while-blocked behaviour.
"""

import asyncio
import errno
import socket

try:
    from asyncio import sleep_ms
    from time import ticks_add, ticks_diff, ticks_ms

    def context(ca):
        """A TLS client context that trusts only the CA certificate ``ca`` (DER bytes)."""
        import tls  # the built-in under ssl.py, whose wrapper would cost 1 KB of heap

        c = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
        c.verify_mode = tls.CERT_REQUIRED
        c.load_verify_locations(ca)
        return c

    def wrap(s, ctx, host):
        return ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
except ImportError:  # CPython: the same names, in a module the firmware never loads
    from edge.hal.cpython import sleep_ms, ticks_add, ticks_diff, ticks_ms
    from edge.hal.cpython import tls_context as context  # noqa: F401 - edge.uplink uses it
    from edge.hal.cpython import tls_wrap as wrap


def deadline(s):
    """The ticks_ms() deadline ``s`` seconds from now."""
    return ticks_add(ticks_ms(), int(s * 1000))


def open_socket(host, port, ctx=None):
    """A non-blocking socket connecting to ``host:port`` (over TLS with ``ctx``); a refusal
    or a certificate that does not verify shows at the first ``send`` or ``recv``."""
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(ai[-1])
    except OSError as e:
        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
            s.close()
            raise
    return wrap(s, ctx, host) if ctx else s


async def send(s, data, until=None):
    """Send all of ``data`` (bytes, bytearray or memoryview)."""
    mv = memoryview(data)
    while mv:
        try:
            n = s.send(mv)  # None: a TLS socket would block
            if n:
                mv = mv[n:]
                continue
        except OSError as e:
            if e.errno != errno.EAGAIN and e.errno != errno.ENOTCONN:  # ENOTCONN: connecting
                raise
        if until is not None and ticks_diff(until, ticks_ms()) <= 0:
            raise asyncio.TimeoutError
        await sleep_ms(2)


async def recv(s, n, until=None):
    """Up to ``n`` bytes, once at least one came."""
    while True:
        try:
            b = s.recv(n)
            if b:
                return b
            if b is not None:  # None: a TLS socket would block
                raise EOFError
        except OSError as e:
            if e.errno != errno.EAGAIN and e.errno != errno.ENOTCONN:
                raise
        if until is not None and ticks_diff(until, ticks_ms()) <= 0:
            raise asyncio.TimeoutError
        await sleep_ms(2)
