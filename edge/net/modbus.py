"""The firmware's own asyncio Modbus TCP master (MicroPython 1.2x and CPython 3.11).

Why our own: micropython-modbus on PyPI is an upip-era source archive that pip
cannot install (docs/domain.md, Messaging); the agent needs a small master it can bound in
RAM and test against pymodbus servers.

    m = ModbusTCPMaster(host, port, unit=1, timeout_ms=1000)
    regs = await m.read_holding(addr, count)   # or read_input: a list of ints 0-65535
    await m.write_coil(addr, True)             # function 05: a relay output (the barrier)
    m.close()

Behaviour, in numbers (defaults in brackets):

- One request at a time per master (a flag, looked at every ms by the next caller: no
  ``asyncio.Lock``); each gets the next transaction id (1..65535, wrapping) and one
  deadline of ``timeout_ms`` [1,000 ms] covering connect, send and reply; past it ->
  ``ModbusTimeout`` (``stats["timeouts"]``).
  The exchange is cancelled there; a connection still being opened, or one whose request
  was not wholly sent (it cannot be taken back), is closed.
- A reply whose transaction id is not the current one (the late answer to a request
  that timed out) is discarded and counted in ``stats["stale"]``; the connection is
  kept, so a slow device costs one timeout, not a reconnect. Frames are assembled
  in one 260-byte buffer allocated at construction, into which every byte read goes at
  once, so a timeout in the middle of a frame loses nothing and the next call finishes
  and discards it.
- After ``max_timeouts`` [3] timeouts in a row the connection is presumed half-open
  and closed. A refused, reset or closed connection raises ``ModbusError`` and is closed
  (``stats["connection_errors"]``). The next call
  opens a new one (``stats["connects"]``; the connect is non-blocking and reports a
  refusal only at the first write or read, so a refused attempt counts in
  ``connects`` and in ``connection_errors``).
- An exception reply raises ``ModbusException`` with its ``.code``
  (``stats["exceptions"]``); a malformed reply raises ``ModbusError``, and resets the
  connection when the MBAP header itself is bad (protocol id not 0, length outside
  2..254: the byte stream can no longer be trusted). A write's reply must echo its
  request byte for byte. Bad arguments (count outside 1..125, registers or a coil past
  65535) raise ``ValueError`` at the call, before any I/O. The exceptions come from
  edge/net/modbus_codec.py and are re-exported here.

Errors carry a short tag and the facts as their args, not sentences (every string costs
heap on the device): ``ModbusTimeout("no reply", host, port, timeout_ms)``,
``ModbusError("link lost", host, port, oserror)`` (refused, reset, or ``OSError("closed")``
when the server closed it; the next call reconnects), ``ModbusError("bad MBAP", protocol_id,
length)``, ``ModbusError("bad unit", unit)``, and from the codec ``ModbusError("bad reply",
function, count, first bytes)`` (count 0 for a write), ``ValueError("bad read", function,
count, address)``, ``ValueError("bad coil", address)`` and ``ModbusException`` ("modbus
exception 02 to function 03").

No asyncio streams and no ``asyncio.wait_for``: the socket is a non-blocking one looked
at every 2 ms with a deadline in ticks (edge/net/sock.py), so asyncio's stream and funcs
modules (2.5 KB of heap) are never loaded; a connect that times out is closed at once.

Heap (``python -m tools.footprint``, 64-bit unix port, loaded as .mpy as the device does):
about 3.7 KB with its codec in the agent (edge.net.sock, ~1.2 KB, is counted with the
MQTT client, which the agent imports first), on top of asyncio (about 4.7 KB imported alone);
one master about 0.9 KB. Every function, class and string here costs heap, hence the MBAP
header inline and the terse messages.
"""

import asyncio
import struct

from edge.net import sock  # one name here: each costs a slot in this module's dict
from edge.net.modbus_codec import (  # the exceptions are re-exported: import them from here
    ModbusError,
    ModbusException,
    ModbusTimeout,
    coil_request,
    parse_read_reply,
    parse_write_reply,
    read_request,
)


class ModbusTCPMaster:
    """A Modbus TCP client for one server and unit id; see the module docstring."""

    def __init__(self, host, port=502, unit=1, timeout_ms=1000, max_timeouts=3):
        self.host = host
        self.port = port
        self.unit = unit
        self.timeout_ms = timeout_ms
        self.max_timeouts = max_timeouts
        # keyword arguments: their names become qstrs, which the keys used below then share
        # (a string literal longer than 10 characters would cost a str object on the heap)
        self.stats = dict(requests=0, replies=0, exceptions=0, timeouts=0, stale=0, connects=0,
                          connection_errors=0)
        self._w = None  # the non-blocking socket (edge/net/sock.py)
        self._busy = False  # a request is under way
        self._tid = 0
        self._rx = bytearray(260)  # the longest Modbus TCP ADU
        self._n = 0  # bytes of self._rx in use
        self._late = 0  # timeouts in a row
        self._sent = False  # the current request went out whole

    def read_holding(self, address, count):
        """Read ``count`` (1..125) holding registers (function 03) from ``address``."""
        return self._call(read_request(3, address, count), count)

    def read_input(self, address, count):
        """Read ``count`` (1..125) input registers (function 04) from ``address``."""
        return self._call(read_request(4, address, count), count)

    def write_coil(self, address, on):
        """Switch coil ``address`` on or off (function 05); returns None once echoed."""
        return self._call(coil_request(address, on), 0)

    def close(self):
        """Close the connection (the next call opens a new one)."""
        w = self._w
        self._w = None
        self._n = self._late = 0
        if w:
            w.close()

    async def _call(self, req, count):
        """One exchange of request PDU ``req`` (built, so checked, before any I/O): the
        registers read (``count`` of them), or None for a write (``count`` 0)."""
        st = self.stats
        while self._busy:  # one request at a time: a flag looked at every ms (an
            await sock.sleep_ms(1)  # asyncio.Lock would load 0.7 KB more of asyncio)
        self._busy = True
        try:
            st["requests"] += 1
            self._sent = False
            try:
                # one deadline for the whole exchange (no asyncio.wait_for)
                pdu = await self._exchange(req, sock.deadline(self.timeout_ms / 1000))
            except asyncio.TimeoutError:  # (CPython: a subclass of OSError; caught first)
                st["timeouts"] += 1
                self._late += 1
                if self._late >= self.max_timeouts or not self._sent:
                    # presumed half-open, or a request cut in the middle (its first part
                    # already on the wire): start afresh next time
                    self.close()
                raise ModbusTimeout("no reply", self.host, self.port, self.timeout_ms)
            self._late = 0
            try:
                regs = parse_read_reply(req[0], pdu, count) if count else \
                    parse_write_reply(req, pdu)
            except ModbusException:
                st["exceptions"] += 1
                raise
            st["replies"] += 1
            return regs
        finally:
            self._busy = False

    async def _exchange(self, pdu, until):
        """Send the request, return the PDU of its reply (discarding stale ones)."""
        st = self.stats
        rx = self._rx
        try:
            if not self._w:
                self._w = sock.open_socket(self.host, self.port)
                st["connects"] += 1
            self._tid = tid = self._tid % 65535 + 1
            await sock.send(self._w, struct.pack(">HHHB", tid, 0, 6, self.unit) + pdu, until)
            self._sent = True
            while True:
                n = self._n
                if n > 6:
                    # MBAP header: a protocol id other than 0 or a length outside 2..254
                    # means the byte stream can no longer be trusted
                    rtid, proto, flen, unit = struct.unpack_from(">HHHB", rx)
                    flen += 6  # the whole ADU
                    if proto or not 7 < flen <= 260:
                        self.close()
                        raise ModbusError("bad MBAP", proto, flen - 6)  # protocol id, length
                    if n >= flen:
                        pdu = rx[7:flen]  # a copy
                        rx[:n - flen] = rx[flen:n]  # keep what follows: the next frame
                        self._n = n - flen
                        if rtid != tid:
                            st["stale"] += 1
                            continue
                        if unit != self.unit:
                            raise ModbusError("bad unit", unit)
                        return pdu
                try:
                    data = await sock.recv(self._w, 260 - n, until)
                except EOFError:
                    raise OSError("closed")  # by the server
                rx[n:n + len(data)] = data
                self._n = n + len(data)
        except asyncio.TimeoutError:  # (CPython: an OSError) past the deadline
            raise
        except OSError as exc:
            self.close()
            st["connection_errors"] += 1
            raise ModbusError("link lost", self.host, self.port, exc)  # the next call reconnects
