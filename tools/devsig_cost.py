"""What the device signature costs the agent: ``python -m tools.devsig_cost``.

Runs ``tools/mpy/devsig_probe.py`` under the real MicroPython at the agent's heap
(``-X heapsize=96K``) from the firmware image (``.mpy``, as the agent imports it) and prints
JSON: the heap ``protocols.p256`` takes once imported, the bytes one signature allocates
(short-lived: the churn the GC collects), the time of the public key and of N signatures of
a weighing's signed bytes (min / median / max, ms): on an empty heap with the module
resident; loaded for each call and freed after it, as the agent signs
(``edge.signer.p256``); and so, "as in the agent" (16 KB free among small live objects,
``gc.threshold(8192)``). README (Firmware heap) and edge/FAILURES.md (Device key) quote it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from tools.firmware import DEFAULT_HEAP, REPO, FirmwareError, build_firmware, micropython_binary

PROBE = REPO / "tools" / "mpy" / "devsig_probe.py"


def _ms(us: dict[str, int]) -> dict[str, float]:
    return {k: (v if k == "n" else round(v / 1000, 2)) for k, v in us.items()}


def measure(runs: int = 100, heap: str = DEFAULT_HEAP) -> dict[str, Any]:
    """The probe's figures, times in ms."""
    image = build_firmware()
    done = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", str(PROBE),
                           str(runs)], capture_output=True, text=True, cwd=image,
                          env={"MICROPYPATH": f"{image}:.frozen"}, check=True, timeout=600)
    raw: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"heap": heap, "import_bytes": raw["import_bytes"],
            "allocated_per_sign_bytes": raw["allocated_per_sign"],
            "public_ms": round(raw["public_us"] / 1000, 2),
            "sign_ms": _ms(raw["sign_us"]),
            "sign_ms_loaded_per_use": _ms(raw["sign_us_per_use"]),
            "sign_ms_agent_like": _ms(raw["sign_us_agent_like"]),
            "agent_like_free_bytes": raw["agent_like_free"]}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.devsig_cost",
        description="Time and heap of the device signature (ECDSA P-256, protocols/p256.py)\n"
                    "under the real MicroPython at the agent's heap, as JSON.",
        epilog="examples:\n"
               "  python -m tools.devsig_cost              # 100 signatures at 96K\n"
               "  python -m tools.devsig_cost --runs 20 --heap 128K",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100, help="signatures per series (default 100)")
    p.add_argument("--heap", default=DEFAULT_HEAP,
                   help=f"MicroPython heap (default {DEFAULT_HEAP})")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON; return an exit code."""
    args = _parser().parse_args(argv)
    if args.runs < 1:
        print("devsig_cost: --runs must be at least 1", file=sys.stderr)
        return 2
    try:
        result = measure(args.runs, args.heap)
    except FirmwareError as exc:
        print(f"devsig_cost: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"devsig_cost: the probe failed under micropython:\n"
              f"{(exc.stderr or exc.stdout or '').strip()}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
