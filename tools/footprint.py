"""Heap cost of the firmware's modules under the real MicroPython: ``python -m tools.footprint``.

Imports the modules of the agent one by one from the built ``.mpy`` image and
prints what each adds to the heap (bytecode, function objects, interned strings)
as JSON. The agent must fit, code and data, in a 96 KiB heap.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tools.firmware import BUILD_DIR, REPO, build_firmware, micropython_binary

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


def main() -> None:
    mods = tuple(sys.argv[1:]) or AGENT_MODULES
    print(json.dumps(measure(mods), indent=1))


if __name__ == "__main__":
    main()
