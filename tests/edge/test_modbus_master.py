"""edge.net.modbus against a scripted Modbus TCP server on 127.0.0.1: framing faults.

Runs under pytest and under MicroPython (tests/mpy_runner.py). The server answers each
request with bytes the test chooses, so it can split a reply into single bytes, glue a
stale reply to a fresh one, or send a frame no real server would.
"""

import asyncio
import os
import struct

from edge.net.modbus import (
    ModbusConnectionError,
    ModbusError,
    ModbusException,
    ModbusProtocolError,
    ModbusTCPMaster,
)


def _reply(tid, regs, unit=1, fn=3, proto=0):
    data = b"".join(struct.pack(">H", r) for r in regs)
    return struct.pack(">HHHBBB", tid, proto, 3 + len(data), unit, fn, len(data)) + data


class ScriptedServer:
    """Answers request n (1, 2, ...) with ``script(tid, n)``: a list of byte chunks."""

    def __init__(self, script):
        self.script = script
        self.requests = 0
        self.connections = 0
        self.server = None
        self.port = 0

    async def start(self):
        for _ in range(20):  # MicroPython's Server cannot tell its port: try random ones
            self.port = 20000 + (os.urandom(2)[0] << 8 | os.urandom(1)[0]) % 30000
            try:
                self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
                return self
            except OSError:
                continue
        raise OSError("no free port for the scripted server")

    async def _serve(self, r, w):
        self.connections += 1
        try:
            while True:
                request = await r.readexactly(12)
                self.requests += 1
                tid = (request[0] << 8) | request[1]
                for chunk in self.script(tid, self.requests):
                    w.write(chunk)
                    await w.drain()
        except (EOFError, OSError):
            pass
        w.close()
        try:  # noqa: SIM105 - MicroPython has no contextlib.suppress
            await w.wait_closed()  # (on MicroPython this is what closes the socket)
        except OSError:
            pass

    async def close(self):
        self.server.close()
        await self.server.wait_closed()


def _run(script, test):
    async def main():
        server = await ScriptedServer(script).start()
        master = ModbusTCPMaster("127.0.0.1", server.port, unit=1, timeout_ms=500)
        try:
            await test(master, server)
        finally:
            master.close()
            await server.close()

    asyncio.run(main())


async def _error(coro):
    try:
        await coro
    except ModbusError as exc:
        return exc
    raise AssertionError("no ModbusError")


def test_master_assembles_a_reply_sent_byte_by_byte():
    def script(tid, n):
        frame = _reply(tid, [0xBEEF, 7])
        return [frame[i : i + 1] for i in range(len(frame))]

    async def t(master, server):
        assert await master.read_holding(0, 2) == [0xBEEF, 7]
        assert await master.read_holding(0, 2) == [0xBEEF, 7]
        assert master.stats["connects"] == 1

    _run(script, t)


def test_master_discards_stale_reply_glued_to_the_fresh_one():
    def script(tid, n):
        if n == 1:
            return []  # never answered: times out
        return [_reply(tid - 1, [111]) + _reply(tid, [222])]  # late answer + this one

    async def t(master, server):
        exc = await _error(master.read_holding(5, 1))
        assert type(exc).__name__ == "ModbusTimeout"
        assert await master.read_holding(5, 1) == [222]
        assert master.stats["stale"] == 1 and master.stats["connects"] == 1

    _run(script, t)


def test_master_bad_protocol_id_resets_the_connection():
    def script(tid, n):
        return [_reply(tid, [1], proto=7 if n == 1 else 0)]

    async def t(master, server):
        exc = await _error(master.read_holding(0, 1))
        assert isinstance(exc, ModbusProtocolError) and "protocol 7" in str(exc)
        assert await master.read_holding(0, 1) == [1]
        assert (server.connections, master.stats["connects"]) == (2, 2)

    _run(script, t)


def test_master_reply_from_another_unit_is_a_protocol_error():
    def script(tid, n):
        return [_reply(tid, [1], unit=9 if n == 1 else 1)]

    async def t(master, server):
        exc = await _error(master.read_holding(0, 1))
        assert isinstance(exc, ModbusProtocolError) and "unit 9" in str(exc)
        assert await master.read_holding(0, 1) == [1]  # framing intact: same connection
        assert server.connections == 1

    _run(script, t)


def test_master_exception_reply_names_the_request():
    def script(tid, n):
        return [struct.pack(">HHHBBB", tid, 0, 3, 1, 0x84, 0x06)]

    async def t(master, server):
        exc = await _error(master.read_input(0, 4))
        assert isinstance(exc, ModbusException) and exc.code == 6
        assert "server device busy" in str(exc) and "function 04" in str(exc)
        assert master.stats["exceptions"] == 1

    _run(script, t)


def test_master_server_closing_gives_connection_error_then_reconnects():
    def script(tid, n):
        if n == 1:
            raise OSError("hang up")  # the server drops the connection
        return [_reply(tid, [5])]

    async def t(master, server):
        exc = await _error(master.read_holding(0, 1))
        assert isinstance(exc, ModbusConnectionError) and "reconnects" in str(exc)
        assert await master.read_holding(0, 1) == [5]
        assert master.stats["connection_errors"] == 1 and server.connections == 2

    _run(script, t)
