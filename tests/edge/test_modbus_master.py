"""edge.net.modbus against a scripted Modbus TCP server on 127.0.0.1: framing faults.

Runs under pytest and under MicroPython (tests/mpy_runner.py). The server answers each
request with bytes the test chooses, so it can split a reply into single bytes, glue a
stale reply to a fresh one, or send a frame no real server would.
"""

import asyncio
import struct

from edge.net.modbus import ModbusError, ModbusException, ModbusTCPMaster, ModbusTimeout
from shared_support import serve_on_free_port


def _reply(tid, regs, unit=1, fn=3, proto=0):
    data = b"".join(struct.pack(">H", r) for r in regs)
    return struct.pack(">HHHBBB", tid, proto, 3 + len(data), unit, fn, len(data)) + data


class ScriptedServer:
    """Answers request n (1, 2, ...) with ``script(tid, n)``: a list of byte chunks.

    The 12 bytes of every request are kept in ``received``.
    """

    def __init__(self, script):
        self.script = script
        self.requests = 0
        self.received = []
        self.connections = 0
        self.server = None
        self.port = 0

    async def start(self):
        self.server, self.port = await serve_on_free_port(self._serve, "scripted server")
        return self

    async def _serve(self, r, w):
        self.connections += 1
        try:
            while True:
                request = await r.readexactly(12)
                self.requests += 1
                self.received.append(request)
                tid = (request[0] << 8) | request[1]
                for chunk in self.script(tid, self.requests):
                    w.write(chunk)
                    await w.drain()
        except (EOFError, OSError):
            pass
        w.close()
        try:  # (MicroPython has no contextlib.suppress)
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


def _h(text):
    return bytes(int(x, 16) for x in text.split())


def test_master_request_bytes_and_transaction_id_wrap():
    def script(tid, n):
        if n == 1:
            return [_reply(tid, list(range(10)), unit=17)]
        return [_reply(tid, [n, 0xFFFF, 0x8000], unit=17, fn=4)]

    async def t(master, server):
        master.unit = 17
        master._tid = 65534  # the next transaction ids: 65535, then 1 again
        assert await master.read_holding(0, 10) == list(range(10))
        assert await master.read_input(0x6B, 3) == [2, 65535, 32768]
        assert await master.read_input(0x6B, 3) == [3, 65535, 32768]
        assert server.received == [_h("FF FF 00 00 00 06 11 03 00 00 00 0A"),
                                   _h("00 01 00 00 00 06 11 04 00 6B 00 03"),
                                   _h("00 02 00 00 00 06 11 04 00 6B 00 03")]
        st = master.stats
        assert (st["requests"], st["replies"], st["connects"], st["stale"]) == (3, 3, 1, 0)

    _run(script, t)


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
        assert isinstance(exc, ModbusTimeout)
        assert exc.args == ("no reply", "127.0.0.1", server.port, 500)
        assert await master.read_holding(5, 1) == [222]
        assert master.stats["stale"] == 1 and master.stats["connects"] == 1

    _run(script, t)


def test_master_bad_mbap_header_resets_the_connection():
    def script(tid, n):
        frame = _reply(tid, [1], proto=7 if n == 1 else 0)
        if n in (3, 5):  # MBAP length 1 (no function code), 255 (PDU past 253 bytes)
            frame = frame[:4] + (b"\x00\x01" if n == 3 else b"\x00\xff") + frame[6:]
        return [frame]

    async def t(master, server):
        for bad in ((7, 5), (0, 1), (0, 255)):  # protocol id, length
            exc = await _error(master.read_holding(0, 1))
            assert type(exc) is ModbusError and exc.args == ("bad MBAP",) + bad, exc
            assert await master.read_holding(0, 1) == [1]
        assert (server.connections, master.stats["connects"]) == (4, 4)
        assert master.stats["connection_errors"] == 0

    _run(script, t)


def test_master_reply_from_another_unit_is_rejected_on_the_same_connection():
    def script(tid, n):
        return [_reply(tid, [1], unit=9 if n == 1 else 1)]

    async def t(master, server):
        exc = await _error(master.read_holding(0, 1))
        assert type(exc) is ModbusError and exc.args == ("bad unit", 9), exc
        assert await master.read_holding(0, 1) == [1]  # framing intact: same connection
        assert server.connections == 1

    _run(script, t)


def test_master_exception_reply_names_the_request():
    def script(tid, n):
        return [struct.pack(">HHHBBB", tid, 0, 3, 1, 0x84, 0x06)]

    async def t(master, server):
        exc = await _error(master.read_input(0, 4))
        assert isinstance(exc, ModbusException) and exc.code == 6
        assert str(exc) == "modbus exception 06 to function 04"
        assert master.stats["exceptions"] == 1 and master.stats["replies"] == 0

    _run(script, t)


def test_master_server_closing_is_a_modbus_error_then_reconnects():
    def script(tid, n):
        if n == 1:
            raise OSError("hang up")  # the server drops the connection
        return [_reply(tid, [5])]

    async def t(master, server):
        exc = await _error(master.read_holding(0, 1))
        assert type(exc) is ModbusError
        assert exc.args[:3] == ("link lost", "127.0.0.1", server.port)
        assert isinstance(exc.args[3], OSError) and exc.args[3].args == ("closed",)
        assert await master.read_holding(0, 1) == [5]
        assert master.stats["connection_errors"] == 1 and server.connections == 2

    _run(script, t)


def test_master_reconnects_after_max_timeouts_in_a_row():
    def script(tid, n):
        return [_reply(tid, [n])] if n > 3 else []  # the first three are never answered

    async def t(master, server):
        master.timeout_ms = 100
        for _ in range(3):
            assert isinstance(await _error(master.read_holding(0, 1)), ModbusTimeout)
        # presumed half-open after the third: the fourth goes on a new connection
        assert await master.read_holding(0, 1) == [4]
        assert server.connections == 2
        st = master.stats
        assert (st["timeouts"], st["connects"], st["connection_errors"]) == (3, 2, 0)

    _run(script, t)



def test_master_writes_a_coil_and_checks_the_echo():
    box = {}

    def script(tid, n):
        request = box["server"].received[-1]  # a normal reply echoes the request
        if n == 3:  # the echo of another value: the coil was not set as asked
            return [request[:10] + b"\x00\x00"]
        if n == 4:
            return [struct.pack(">HHHBBB", tid, 0, 3, 1, 0x85, 0x02)]
        return [request]

    async def t(master, server):
        box["server"] = server
        assert await master.write_coil(0, True) is None
        assert await master.write_coil(0x10, False) is None
        exc = await _error(master.write_coil(0x10, True))
        assert type(exc) is ModbusError and exc.args == ("bad reply", 5, 0, _h("05 00 10 00"))
        exc = await _error(master.write_coil(500, True))
        assert isinstance(exc, ModbusException) and exc.code == 2
        assert str(exc) == "modbus exception 02 to function 05"
        assert server.received == [_h("00 01 00 00 00 06 01 05 00 00 FF 00"),
                                   _h("00 02 00 00 00 06 01 05 00 10 00 00"),
                                   _h("00 03 00 00 00 06 01 05 00 10 FF 00"),
                                   _h("00 04 00 00 00 06 01 05 01 F4 FF 00")]
        st = master.stats
        assert (st["requests"], st["replies"], st["exceptions"], st["connects"]) == (4, 2, 1, 1)

    _run(script, t)


def test_master_refuses_a_coil_past_65535_before_sending():
    async def t(master, server):
        for bad in (65536, -1):
            try:
                await master.write_coil(bad, True)
            except ValueError as exc:
                assert exc.args == ("bad coil", bad)
            else:
                raise AssertionError("no ValueError")
        assert master.stats["requests"] == 0 and server.connections == 0

    _run(lambda tid, n: [], t)
