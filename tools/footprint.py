"""Heap cost of the firmware's modules under the real MicroPython: ``python -m tools.footprint``.

Imports the modules of the agent one by one from the built ``.mpy`` image and
prints what each adds to the heap (bytecode, function objects, interned strings)
as JSON. The agent must fit, code and data, in a 96 KiB heap.

Also the interned strings (qstrs: every identifier, and string constants up to 10
characters) and how many more fit before MicroPython's qstr pool doubles: the pools
hold 20, 40, 80, 160, 320 ... entries (11 bytes each), so the 621st qstr allocates a
640-entry pool, 7 KB of heap at one step (edge/FAILURES.md, Heap). ``qstr_room``
counts from the imports alone; the running agent interns about 35 more.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

from tools.firmware import REPO, FirmwareError, build_firmware, micropython_binary

AGENT_MODULES = (
    "asyncio", "json", "protocols.hmac_sha256", "protocols.topics",
    "edge.persist", "edge.outbox_records", "edge.outbox", "edge.config", "edge.hal.unix",
    "edge.net.mqtt", "edge.uplink", "edge.agent",
    "edge.drivers.weighing", "edge.net.modbus_codec", "edge.net.modbus", "protocols.regdecode",
    "edge.drivers.weighbridge",
)
# a GPS tracker's agent: the same core, its driver instead of the weighbridge's (edge/main.py
# imports only the driver the config names)
TRACKER_MODULES = (*AGENT_MODULES[:AGENT_MODULES.index("edge.drivers.weighing")],
                   "protocols.nmea", "edge.drivers.tracker")
# a lab analyzer's agent: the core, the result-line parser and its driver
LAB_MODULES = (*AGENT_MODULES[:AGENT_MODULES.index("edge.drivers.weighing")],
               "protocols.labline", "edge.drivers.lab")


QSTR_POOL_FIRST = 20  # MicroPython's first dynamic qstr pool; each next one doubles


def measure(modules: tuple[str, ...] = AGENT_MODULES) -> dict[str, int]:
    """{module: bytes of heap its import took, ..., "total": all of them, "qstrs": interned
    strings after them, "qstr_room": how many more before the qstr pool doubles}."""
    image = build_firmware()
    probe = REPO / "tools" / "mpy" / "footprint_probe.py"
    # run from the image with "" first on the path, as the agent runs (-m edge.main): the
    # modules' __file__, interned, are then the same short paths as on the device
    env = {"MICROPYPATH": ".frozen"}
    done = subprocess.run([micropython_binary(), "-X", "heapsize=4M", "-c", probe.read_text(),
                           *modules], capture_output=True, text=True, env=env, cwd=image,
                          check=True)
    lines = done.stdout.strip().splitlines()
    result: dict[str, int] = json.loads(lines[-1])
    pool = re.search(r"n_pool=(\d+), n_qstr=(\d+)", done.stdout)
    if pool:
        pools, qstrs = int(pool[1]), int(pool[2])
        result["qstrs"] = qstrs
        result["qstr_room"] = QSTR_POOL_FIRST * (2 ** pools - 1) - qstrs
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.footprint",
        description="Heap cost of the firmware's modules under the real MicroPython.\n\n"
                    "Imports them one by one from the built .mpy image and prints what each\n"
                    "adds to the heap, and the total, as JSON; also the interned strings\n"
                    "(qstrs) and the room left before their pool doubles (7 KB at once).",
        epilog="examples:\n"
               "  python -m tools.footprint                  # the agent's modules\n"
               "  python -m tools.footprint --tracker        # a GPS tracker agent's\n"
               "  python -m tools.footprint --lab            # a lab analyzer agent's\n"
               "  python -m tools.footprint edge.outbox edge.uplink",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="*", metavar="MODULE",
                   help="modules to import, in order (default: every module the agent imports)")
    p.add_argument("--tracker", action="store_true",
                   help="the modules a GPS tracker agent imports (instead of a weighbridge's)")
    p.add_argument("--lab", action="store_true",
                   help="the modules a lab analyzer agent imports (instead of a weighbridge's)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the heap cost of ``argv``'s modules (or the agent's) as JSON; return an exit code."""
    args = _parser().parse_args(argv)
    try:
        default = (TRACKER_MODULES if args.tracker else LAB_MODULES if args.lab
                   else AGENT_MODULES)
        result = measure(tuple(args.modules) or default)
    except FirmwareError as exc:
        print(f"footprint: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:  # a module that does not import: say which
        print(f"footprint: micropython failed importing {' '.join(args.modules)}:\n"
              f"{(exc.stderr or exc.stdout or '').strip()}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
