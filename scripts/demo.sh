#!/usr/bin/env bash
# One command for a working demo site: broker, emulated weighbridges, agents, controller + API.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/portwatch demo "$@"
