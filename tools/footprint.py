"""Heap cost of the firmware's modules under the real MicroPython: ``python -m tools.footprint``.

Imports the modules of the agent one by one from the built ``.mpy`` image and
prints what each adds to the heap (bytecode, function objects, interned strings)
as JSON. The agent must fit, code and data, in a 96 KiB heap.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from tools.firmware import BUILD_DIR, REPO, FirmwareError, build_firmware, micropython_binary

AGENT_MODULES = (
    "asyncio", "json", "protocols.hmac_sha256", "protocols.topics", "protocols.envelope",
    "edge.persist", "edge.outbox_records", "edge.outbox", "edge.config", "edge.hal.unix",
    "edge.net.mqtt", "edge.uplink", "edge.agent",
    "edge.drivers.weighing", "edge.net.modbus_codec", "edge.net.modbus", "protocols.regdecode",
    "edge.drivers.weighbridge",
)


def measure(modules: tuple[str, ...] = AGENT_MODULES) -> dict[str, int]:
    """{module: bytes of heap its import took, ..., "total": all of them}."""
    image = build_firmware()
    probe = REPO / "tools" / "mpy" / "footprint_probe.py"
    env = {"MICROPYPATH": f"{image}:.frozen"}
    done = subprocess.run([micropython_binary(), "-X", "heapsize=4M", str(probe), *modules],
                          capture_output=True, text=True, env=env, cwd=BUILD_DIR, check=True)
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.footprint",
        description="Heap cost of the firmware's modules under the real MicroPython.\n\n"
                    "Imports them one by one from the built .mpy image and prints what each\n"
                    "adds to the heap, and the total, as JSON.",
        epilog="examples:\n"
               "  python -m tools.footprint                  # the agent's modules\n"
               "  python -m tools.footprint edge.outbox edge.uplink",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="*", metavar="MODULE",
                   help="modules to import, in order (default: every module the agent imports)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the heap cost of ``argv``'s modules (or the agent's) as JSON; return an exit code."""
    args = _parser().parse_args(argv)
    try:
        result = measure(tuple(args.modules) or AGENT_MODULES)
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
