"""What MQTT over TLS costs the agent: ``python -m tools.tls_cost [--connects N]``.

Starts two Mosquitto brokers (one TLS listener with a fresh site CA, one in clear) and runs
the firmware's MQTT client (edge.net.mqtt, from the built .mpy image) under
``micropython -X heapsize=96K`` against each, N connects in a row. Prints JSON: the heap
the TLS context takes once (the ssl module's objects and the pinned CA), the heap one open
connection holds, and connect() to CONNACK in ms (TCP + TLS handshake + MQTT CONNECT),
min / median / max. The README (Firmware heap) and edge/FAILURES.md quote its figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.broker import MosquittoProcess
from tools.firmware import REPO, build_firmware, micropython_binary
from tools.procs import free_port
from tools.tls import DEMO_HOSTS, broker_tls, ca_der


def _probe(port: int, connects: int, ca: Path | None) -> dict[str, Any]:
    image = build_firmware()
    args = [micropython_binary(), "-X", "heapsize=96K",
            str(REPO / "tools" / "mpy" / "tls_probe.py"), "127.0.0.1", str(port), str(connects)]
    if ca is not None:
        args.append(str(ca))
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True,
                          env={"MICROPYPATH": f"{image}:.frozen"})
    raw: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    ms, held = raw["connect_ms"], raw["connection_bytes"]
    return {"context_heap_bytes": raw["context_bytes"],
            "connection_heap_bytes": int(statistics.median(held)),
            "connect_ms": {"min": min(ms), "median": statistics.median(ms), "max": max(ms)},
            "connects": len(ms)}


def measure(connects: int = 20) -> dict[str, Any]:
    """Both brokers, both runs: {"tls": {...}, "clear": {...}, "tls_extra": {...}}."""
    with tempfile.TemporaryDirectory(prefix="pw-tls-cost-") as tmp:
        work = Path(tmp)
        tls, _ = broker_tls(work / "ca", work / "tls", DEMO_HOSTS, site="tls-cost")
        der = work / "ca.der"
        der.write_bytes(ca_der(tls.ca))
        secure = MosquittoProcess(port=free_port(), workdir=work / "tls-broker", tls=tls)
        clear = MosquittoProcess(port=free_port(), workdir=work / "clear-broker")
        with secure, clear:
            over_tls = _probe(secure.port, connects, der)
            in_clear = _probe(clear.port, connects, None)
    return {"tls": over_tls, "clear": in_clear, "tls_extra": {
        "heap_bytes_once": over_tls["context_heap_bytes"],
        "heap_bytes_per_connection": over_tls["connection_heap_bytes"]
        - in_clear["connection_heap_bytes"],
        "connect_ms_median": over_tls["connect_ms"]["median"]
        - in_clear["connect_ms"]["median"]}}


def main(argv: list[str] | None = None) -> int:
    """Print the measurement as JSON; return an exit code."""
    p = argparse.ArgumentParser(
        prog="python -m tools.tls_cost",
        description="Heap and connect time MQTT over TLS costs the agent, as JSON.",
        epilog="example:\n  python -m tools.tls_cost --connects 20",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connects", type=int, default=20, help="connects per broker (default 20)")
    args = p.parse_args(argv)
    if args.connects < 1:
        p.error("--connects must be at least 1")
    print(json.dumps(measure(args.connects), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
