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
"""

import asyncio
import errno
import socket

try:
    from asyncio import sleep_ms
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython: the same names, in a module the firmware never loads
    from edge.hal.cpython import sleep_ms, ticks_add, ticks_diff, ticks_ms


def deadline(s):
    """The ticks_ms() deadline ``s`` seconds from now."""
    return ticks_add(ticks_ms(), int(s * 1000))


def open_socket(host, port):
    """A non-blocking socket connecting to ``host:port``; a refusal shows at the first
    ``send`` or ``recv``."""
    ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(ai[-1])
    except OSError as e:
        if e.errno not in (errno.EINPROGRESS, errno.EAGAIN):
            s.close()
            raise
    return s


async def send(s, data, until=None):
    """Send all of ``data`` (bytes, bytearray or memoryview)."""
    mv = memoryview(data)
    while mv:
        try:
            mv = mv[s.send(mv) or 0:]
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
            if not b:
                raise EOFError
            return b
        except OSError as e:
            if e.errno != errno.EAGAIN and e.errno != errno.ENOTCONN:
                raise
        if until is not None and ticks_diff(until, ticks_ms()) <= 0:
            raise asyncio.TimeoutError
        await sleep_ms(2)
