"""Drive edge.net.modbus against a real Modbus TCP server, for hil_tests/test_edge_modbus_master.py.

Runs under ``micropython -X heapsize=96K`` with MICROPYPATH holding the repository root
and ``.frozen``:  micropython modbus_probe.py HOST PORT UNIT TIMEOUT_MS OP...

OPs, run in order on one master: ``h:ADDR:COUNT`` (read holding), ``i:ADDR:COUNT``
(read input), ``c:ADDR:0|1`` (write single coil off / on: ``OK c ADDR 0|1 None``),
``wait`` (print WAIT, then block until a line arrives on stdin, so the
test can change the server in between), ``stats``. One line of output per OP:
``OK h ADDR COUNT v1,v2,...`` or ``ERR ExceptionClass CODE ELAPSED_MS MESSAGE`` (CODE is
``-`` for all but ``ModbusException``; link and frame faults are plain ``ModbusError``).
"""

import asyncio
import sys
import time

from edge.net.modbus import ModbusError, ModbusTCPMaster

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython

    def ticks_ms():
        return int(time.monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b


def say(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    if hasattr(sys.stdout, "flush"):
        sys.stdout.flush()


async def run(host, port, unit, timeout_ms, ops):
    m = ModbusTCPMaster(host, port, unit=unit, timeout_ms=timeout_ms)
    for op in ops:
        if op == "wait":
            say("WAIT")
            sys.stdin.readline()
            continue
        if op == "stats":
            st = m.stats
            say("STATS", " ".join(f"{k}={st[k]}" for k in sorted(st)))
            continue
        kind, addr, count = op.split(":")
        t0 = ticks_ms()
        try:
            if kind == "c":
                regs = [await m.write_coil(int(addr), count == "1")]
            else:
                read = m.read_holding if kind == "h" else m.read_input
                regs = await read(int(addr), int(count))
        except ModbusError as exc:
            say("ERR", type(exc).__name__, getattr(exc, "code", "-"), ticks_diff(ticks_ms(), t0),
                str(exc))
            continue
        say("OK", kind, addr, count, ",".join(str(r) for r in regs))
    m.close()
    say("DONE")


asyncio.run(run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]))
