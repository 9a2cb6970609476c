"""The firmware's own asyncio Modbus TCP master (MicroPython 1.2x and CPython 3.11).

Why our own: micropython-modbus on PyPI is an upip-era source archive that pip
cannot install (DOMAIN.md, Messaging); the agent needs a small master it can bound in
RAM and test against pymodbus servers.

Behaviour, in numbers (defaults in brackets):

- One request at a time per master (an ``asyncio.Lock``); each gets the next
  transaction id (1..65535, wrapping) and a deadline of ``timeout_ms`` [1,000 ms]
  covering connect, send and reply; past it -> ``ModbusTimeout``.
- A reply whose transaction id is not the current one (the late answer to a request
  that timed out) is discarded and counted in ``stats["stale"]``; the connection is
  kept, so a slow device costs one timeout, not a reconnect. Frames are assembled
  in one 260-byte buffer allocated at construction, so a timeout in the middle of a
  frame loses nothing and the next call finishes and discards it.
- After ``max_timeouts`` [3] timeouts in a row the connection is presumed half-open
  and closed; a refused, reset or closed connection raises ``ModbusConnectionError``
  and is closed. The next call opens a new one (``stats["connects"]``; MicroPython's
  non-blocking connect reports a refusal only at the first write or read, so there a
  refused attempt counts in ``connects`` and in ``connection_errors``).
- An exception reply raises ``ModbusException(code)`` with the standard name;
  a malformed reply raises ``ModbusProtocolError`` (and resets the connection when the
  MBAP header itself is bad). All of these derive from ``ModbusError``; bad
  arguments (count outside 1..125, addresses past 65535) raise ``ValueError``.

RAM (gc.mem_free, 64-bit unix port): about 10 KB once imported with its codec (load it
as .mpy: compiling from source needs about 35 KB for a moment); one master about 0.9 KB.
"""

import asyncio

from edge.net import modbus_codec as codec
from edge.net.modbus_codec import (  # noqa: F401 - re-exported: the module's exceptions
    ModbusConnectionError,
    ModbusError,
    ModbusException,
    ModbusProtocolError,
    ModbusTimeout,
)

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:  # CPython
    import time

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

    def ticks_add(a, b):
        return a + b


try:
    _wait_for_ms = asyncio.wait_for_ms
except AttributeError:  # CPython

    def _wait_for_ms(aw, ms):
        return asyncio.wait_for(aw, ms / 1000)


_BUF = codec.MBAP_HEADER + codec.MAX_PDU  # 260: the longest Modbus TCP ADU


class ModbusTCPMaster:
    """A Modbus TCP client for one server and unit id; see the module docstring."""

    def __init__(self, host, port=502, unit=1, timeout_ms=1000, max_timeouts=3):
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout_ms = timeout_ms
        self.max_timeouts = max_timeouts
        self.stats = {"requests": 0, "replies": 0, "exceptions": 0, "timeouts": 0,
                      "stale": 0, "connects": 0, "connection_errors": 0}
        self._r = self._w = None
        self._lock = asyncio.Lock()
        self._tid = 0
        self._rx = bytearray(_BUF)
        self._n = 0  # bytes of self._rx in use
        self._timeouts_in_row = 0

    async def read_holding(self, address, count):
        """Read ``count`` (1..125) holding registers (function 03) from ``address``."""
        return await self._read(codec.READ_HOLDING, address, count)

    async def read_input(self, address, count):
        """Read ``count`` (1..125) input registers (function 04) from ``address``."""
        return await self._read(codec.READ_INPUT, address, count)

    def close(self):
        """Close the connection (the next call opens a new one)."""
        w = self._w
        self._r = self._w = None
        self._n = 0
        self._timeouts_in_row = 0
        if w is None:
            return
        transport = getattr(w, "transport", None)
        if transport is not None:  # CPython
            transport.abort()
            return
        try:  # MicroPython: Stream.close() is a no-op; close the socket itself
            w.s.close()
        except OSError:
            pass

    async def _read(self, function, address, count):
        pdu = codec.read_request(function, address, count)  # ValueError before any I/O
        async with self._lock:
            deadline = ticks_add(ticks_ms(), self.timeout_ms)
            self.stats["requests"] += 1
            try:
                reply = await self._transact(pdu, deadline)
            except ModbusTimeout:
                self.stats["timeouts"] += 1
                self._timeouts_in_row += 1
                if self._timeouts_in_row >= self.max_timeouts:
                    self.close()  # presumed half-open: start afresh next time
                raise
            self._timeouts_in_row = 0
            try:
                regs = codec.parse_read_reply(function, reply, count)
            except ModbusException as exc:
                self.stats["exceptions"] += 1
                raise ModbusException(exc.code, "unit %d, function %02X, address %d, count %d"
                                      % (self.unit, function, address, count))
            self.stats["replies"] += 1
            return regs

    def _left(self, deadline, what):
        left = ticks_diff(deadline, ticks_ms())
        if left <= 0:
            raise ModbusTimeout("no %s from %s:%d unit %d within %d ms"
                                % (what, self.host, self.port, self.unit, self.timeout_ms))
        return left

    def _broken(self, exc, what):
        self.close()
        self.stats["connection_errors"] += 1
        return ModbusConnectionError("%s %s:%d: %r; the next call reconnects"
                                     % (what, self.host, self.port, exc))

    async def _transact(self, pdu, deadline):
        if self._w is None:
            await self._connect(deadline)
        self._tid = self._tid % 65535 + 1
        tid = self._tid
        try:
            self._w.write(codec.mbap_frame(tid, self.unit, pdu))
            await _wait_for_ms(self._w.drain(), self._left(deadline, "send"))
        except asyncio.TimeoutError:
            self.close()  # a half-written request cannot be taken back
            raise ModbusTimeout("request to %s:%d not sent within %d ms"
                                % (self.host, self.port, self.timeout_ms))
        except OSError as exc:
            raise self._broken(exc, "cannot send to")
        while True:
            flen = await self._frame(deadline)
            rtid, unit, _ = codec.parse_mbap_header(self._rx)
            if rtid != tid:
                self.stats["stale"] += 1
                self._consume(flen)
                continue
            reply = bytes(memoryview(self._rx)[codec.MBAP_HEADER:flen])
            self._consume(flen)
            if unit != self.unit:
                raise ModbusProtocolError("reply from unit %d to a request for unit %d"
                                          % (unit, self.unit))
            return reply

    async def _connect(self, deadline):
        try:
            self._r, self._w = await _wait_for_ms(
                asyncio.open_connection(self.host, self.port), self._left(deadline, "connection"))
        except asyncio.TimeoutError:
            self.close()
            self.stats["connection_errors"] += 1
            raise ModbusConnectionError("no TCP connection to %s:%d within %d ms"
                                        % (self.host, self.port, self.timeout_ms))
        except OSError as exc:
            raise self._broken(exc, "cannot connect to")
        self._n = 0
        self.stats["connects"] += 1

    async def _frame(self, deadline):
        """Read until ``self._rx`` starts with one whole ADU; return its length."""
        while True:
            if self._n >= codec.MBAP_HEADER:
                try:
                    flen = codec.parse_mbap_header(self._rx)[2]
                except ModbusProtocolError:
                    self.close()
                    raise
                if self._n >= flen:
                    return flen
            left = self._left(deadline, "reply")
            try:
                # read() takes bytes from the socket only once it resumes, so a timeout
                # never loses any: a partial frame stays in self._rx for the next call
                data = await _wait_for_ms(self._r.read(_BUF - self._n), left)
            except asyncio.TimeoutError:
                self._left(deadline, "reply")
                continue
            except OSError as exc:
                raise self._broken(exc, "connection broken to")
            if not data:
                raise self._broken(EOFError("closed by the server"), "connection closed by")
            self._rx[self._n : self._n + len(data)] = data
            self._n += len(data)

    def _consume(self, flen):
        rest = self._n - flen
        if rest:
            self._rx[:rest] = self._rx[flen : self._n]
        self._n = rest
