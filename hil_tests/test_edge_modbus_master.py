"""The firmware's Modbus master (edge.net.modbus) under the real micropython, against pymodbus.

A pymodbus 3.16 ModbusTcpServer (SimDevice API) serves known registers; for timing
faults a small scripted TCP server stands in for a device that answers late or never.
The master runs in hil_tests/mpy/modbus_probe.py under ``micropython -X heapsize=96K``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tools.firmware import REPO, build_firmware, micropython_binary
from tools.procs import WaitTimeout, free_port, port_open, stop_process, wait_until

PROBE = REPO / "hil_tests" / "mpy" / "modbus_probe.py"

# Values chosen to catch sign, byte-order and off-by-one mistakes.
HOLDING = [0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x1234] + [(i * 257 + 3) & 0xFFFF for i in range(6, 125)]
INPUT = [(60000 - i * 7) for i in range(20)]


def device() -> SimDevice:
    bits = [SimData(0, values=[False] * 16, datatype=DataType.BITS)]
    return SimDevice(id=1, simdata=(
        bits, list(bits),
        [SimData(0, values=HOLDING, datatype=DataType.REGISTERS)],
        [SimData(0, values=INPUT, datatype=DataType.REGISTERS)]))


class PymodbusServer:
    """A pymodbus ModbusTcpServer on its own event loop thread; start/stop from the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: ModbusTcpServer | None = None

    def _call(self, coro) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    async def _start(self) -> None:
        self.server = ModbusTcpServer(device(), address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    def start(self) -> None:
        self._call(self._start())

    def stop(self) -> None:
        if self.server is not None:
            self._call(self.server.shutdown())
            self.server = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class ScriptedServer:
    """A TCP 'device' answering read requests with registers [tid] * count.

    ``delay_first``: the reply to the first request is sent that many seconds late,
    and later replies only after it. ``None``: never answer anything.
    """

    def __init__(self, delay_first: float | None) -> None:
        self.delay_first = delay_first
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[int] = []  # transaction ids, in arrival order
        self.per_connection: list[int] = []  # which connection (1, 2, ...) each came on
        self.connections = 0
        self.late_sent = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def reply(request: bytes) -> bytes:
        tid, _, _, unit, fn, _, count = struct.unpack(">HHHBBHH", request)
        regs = struct.pack(f">{count}H", *([tid] * count))
        return struct.pack(">HHHBBB", tid, 0, 3 + len(regs), unit, fn, len(regs)) + regs

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed by the test
                return
            self.connections += 1
            threading.Thread(target=self._serve_one, args=(conn,), daemon=True).start()

    def _serve_one(self, conn: socket.socket) -> None:
        with conn:
            while True:
                request = conn.recv(12)
                if len(request) < 12:
                    return
                self.requests.append(struct.unpack(">H", request[:2])[0])
                self.per_connection.append(self.connections)
                if self.delay_first is None:
                    continue
                if len(self.requests) == 1:
                    threading.Timer(self.delay_first, self._late, (conn, request)).start()
                else:
                    self.late_sent.wait(5)
                    conn.sendall(self.reply(request))

    def _late(self, conn: socket.socket, request: bytes) -> None:
        conn.sendall(self.reply(request))
        self.late_sent.set()

    def close(self) -> None:
        self.sock.close()


class Probe:
    """modbus_probe.py under micropython; stdout lines collected, stdin to release ``wait``."""

    def __init__(self, port: int, timeout_ms: int, *ops: str,
                 interpreter: str = "micropython") -> None:
        # the firmware image (.mpy, as on the board) for micropython, the sources for CPython
        env = dict(os.environ, MICROPYPATH=f"{build_firmware()}:.frozen", PYTHONPATH=str(REPO))
        args = [str(PROBE), "127.0.0.1", str(port), "1", str(timeout_ms), *ops]
        if interpreter == "micropython":
            argv = [micropython_binary(), "-X", "heapsize=96K", *args]
        else:  # the same master under CPython: one code path for both
            argv = [sys.executable, *args]
        self.proc = subprocess.Popen(argv, env=env, cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def results(self, n: int, timeout: float = 15.0) -> list[str]:
        """Wait for ``n`` result lines (everything but WAIT) and return them."""

        def ready() -> list[str] | None:
            ended = not self._pump_thread.is_alive()
            done = [line for line in self.lines if line != "WAIT"]
            if len(done) >= n:
                return done[:n]
            if ended:
                raise EOFError(f"probe exited with {self.proc.wait()}")
            return None

        try:
            return wait_until(ready, timeout=timeout, what=f"{n} results from the probe")
        except WaitTimeout as exc:
            raise AssertionError(f"{exc}\n--- probe output ---\n" + "\n".join(self.lines)) from None

    def release(self, waits_seen: int) -> None:
        """Let the probe go on past its ``waits_seen``-th ``wait``."""
        wait_until(lambda: self.lines.count("WAIT") >= waits_seen, what="the probe to WAIT")
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def stats(self) -> dict[str, int]:
        line = next(line for line in self.lines if line.startswith("STATS"))
        return {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def stop(self) -> None:
        stop_process(self.proc)  # type: ignore[arg-type]


@pytest.fixture
def pymodbus_server() -> Iterator[PymodbusServer]:
    server = PymodbusServer(free_port())
    server.start()
    yield server
    server.close()


def _ok(values: list[int]) -> str:
    return ",".join(str(v) for v in values)


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_modbus_master_reads_registers_exactly(pymodbus_server: PymodbusServer,
                                               interpreter: str) -> None:
    probe = Probe(pymodbus_server.port, 1000, "h:0:125", "h:3:3", "i:0:20", "i:19:1", "stats",
                  interpreter=interpreter)
    try:
        out = probe.results(5)
    finally:
        probe.stop()
    assert out[0] == "OK h 0 125 " + _ok(HOLDING)  # the 125-register maximum, address 0
    assert out[1] == "OK h 3 3 32768,65535,4660"
    assert out[2] == "OK i 0 20 " + _ok(INPUT)
    assert out[3] == f"OK i 19 1 {INPUT[19]}"
    st = probe.stats()
    assert (st["requests"], st["replies"], st["connects"], st["stale"]) == (4, 4, 1, 0)


def test_modbus_master_unmapped_address_raises_exception_2(
        pymodbus_server: PymodbusServer) -> None:
    probe = Probe(pymodbus_server.port, 1000, "h:500:2", "i:18:5", "h:0:1", "stats")
    try:
        out = probe.results(4)
    finally:
        probe.stop()
    assert out[0].startswith("ERR ModbusException 2 "), out[0]  # illegal data address
    assert out[0].endswith(" modbus exception 02 to function 03"), out[0]
    assert out[1].startswith("ERR ModbusException 2 "), out[1]  # runs past the end
    assert out[1].endswith(" modbus exception 02 to function 04"), out[1]
    assert out[2] == "OK h 0 1 0"  # same connection still good
    st = probe.stats()
    assert (st["exceptions"], st["connects"], st["connection_errors"]) == (2, 1, 0)


def _coils(port: int) -> list[bool]:
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient("127.0.0.1", port=port)
    try:
        assert client.connect()
        reply = client.read_coils(0, count=16, device_id=1)
    finally:
        client.close()
    assert not reply.isError(), reply
    return list(reply.bits[:16])


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_modbus_master_writes_coils_that_pymodbus_stores(pymodbus_server: PymodbusServer,
                                                        interpreter: str) -> None:
    probe = Probe(pymodbus_server.port, 1000, "c:3:1", "c:15:1", "wait", "c:3:0", "c:16:1",
                  "h:3:1", "stats", interpreter=interpreter)
    try:
        assert probe.results(2) == ["OK c 3 1 None", "OK c 15 1 None"]
        assert _coils(pymodbus_server.port) == [i in (3, 15) for i in range(16)]
        probe.release(1)
        out = probe.results(5)
    finally:
        probe.stop()
    assert out[2] == "OK c 3 0 None"
    assert out[3].startswith("ERR ModbusException 2 "), out[3]  # no coil 16 on this device
    assert out[3].endswith(" modbus exception 02 to function 05"), out[3]
    assert out[4] == "OK h 3 1 32768"  # the connection still good after the refusal
    assert _coils(pymodbus_server.port) == [i == 15 for i in range(16)]
    st = probe.stats()
    assert (st["requests"], st["replies"], st["exceptions"], st["connects"]) == (5, 4, 1, 1)


def test_modbus_master_silent_server_times_out() -> None:
    server = ScriptedServer(delay_first=None)
    probe = Probe(server.port, 300, "h:0:2", "h:0:2", "stats")
    try:
        out = probe.results(3)
    finally:
        probe.stop()
        server.close()
    for line in out[:2]:
        assert line.startswith("ERR ModbusTimeout - "), line
        assert line.endswith(f" ('no reply', '127.0.0.1', {server.port}, 300)"), line
        elapsed = int(line.split()[3])
        assert 300 <= elapsed < 700, line  # the timeout, not much later
    assert server.requests == [1, 2]  # both went out on one connection
    assert probe.stats()["timeouts"] == 2


def test_modbus_master_reopens_after_three_timeouts_in_a_row() -> None:
    server = ScriptedServer(delay_first=None)
    probe = Probe(server.port, 200, "h:0:1", "h:0:1", "h:0:1", "h:0:1", "stats")
    try:
        out = probe.results(5)
    finally:
        probe.stop()
        server.close()
    assert all(line.startswith("ERR ModbusTimeout") for line in out[:4]), out
    # presumed half-open after the third: the fourth request goes on a new connection
    assert server.requests == [1, 2, 3, 4]
    assert server.per_connection == [1, 1, 1, 2]
    st = probe.stats()
    assert (st["timeouts"], st["connects"]) == (4, 2)


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
def test_modbus_master_discards_stale_reply(interpreter: str) -> None:
    # The reply to transaction 1 arrives after its 300 ms timeout and before the reply
    # to transaction 2: taking it for the next answer would return [1] instead of [2].
    server = ScriptedServer(delay_first=0.45)  # inside the second request's 300 ms
    probe = Probe(server.port, 300, "h:7:1", "h:7:1", "h:7:2", "stats",
                  interpreter=interpreter)
    try:
        out = probe.results(4)
    finally:
        probe.stop()
        server.close()
    assert out[0].startswith("ERR ModbusTimeout"), out[0]
    assert out[1] == "OK h 7 1 2"
    assert out[2] == "OK h 7 2 3,3"
    st = probe.stats()
    assert (st["stale"], st["timeouts"], st["connects"]) == (1, 1, 1)


def test_modbus_master_reconnects_after_server_restart(pymodbus_server: PymodbusServer) -> None:
    probe = Probe(pymodbus_server.port, 500, "h:0:2", "wait", "h:0:2", "h:0:2", "wait",
                  "h:3:1", "stats")
    try:
        assert probe.results(1) == ["OK h 0 2 0,1"]
        pymodbus_server.stop()
        wait_until(lambda: not port_open(pymodbus_server.port), what="the server to stop")
        probe.release(1)
        out = probe.results(3)
        pymodbus_server.start()
        probe.release(2)
        out = probe.results(5)
    finally:
        probe.stop()
    # the broken connection is reported and closed, then a refused one; both say what failed
    assert out[1].startswith("ERR ModbusError - "), out[1]
    assert "('link lost', '127.0.0.1', " in out[1] and "OSError('closed'" in out[1]
    assert out[2].startswith("ERR ModbusError - "), out[2]
    assert "('link lost', '127.0.0.1', " in out[2], out[2]
    assert "(111" in out[2]  # ECONNREFUSED while the server is down
    assert out[3] == "OK h 3 1 32768"  # a fresh connection on the next call
    st = probe.stats()
    # three connections opened: MicroPython's non-blocking connect reports a refused one
    # only at the first write or read, where it counts as a connection error
    assert (st["connects"], st["connection_errors"], st["replies"]) == (3, 2, 2)


def test_modbus_master_rejects_count_over_125_before_sending() -> None:
    server = ScriptedServer(delay_first=None)
    env = dict(os.environ, MICROPYPATH=f"{build_firmware()}:.frozen")
    code = ("import asyncio\nfrom edge.net.modbus import ModbusTCPMaster\n"
            f"m = ModbusTCPMaster('127.0.0.1', {server.port})\n"
            "try:\n    asyncio.run(m.read_holding(0, 126))\n"
            "except ValueError as e:\n    print('ValueError', e)\n"
            "print(m.stats['requests'], m.stats['connects'])\n")
    out = subprocess.run([micropython_binary(), "-X", "heapsize=96K", "-c", code], env=env,
                         cwd=build_firmware(), capture_output=True, text=True, timeout=30)
    server.close()
    assert out.stdout.splitlines()[0] == "ValueError ('bad read', 3, 126, 0)", out
    assert out.stdout.splitlines()[1] == "0 0"  # nothing sent, no connection opened
    assert server.requests == []
