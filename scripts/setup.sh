#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages, the virtualenv, the project.
# Called by scripts/demo.sh and scripts/test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v mosquitto_passwd >/dev/null 2>&1 || need_apt+=(mosquitto-clients)
# the README's walkthroughs read the API with curl and jq
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v jq >/dev/null 2>&1 || need_apt+=(jq)
# the dashboard's tests and screenshots drive a headless chromium (tests/dashboard)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need_apt+=(chromium)
# Chinese labels and plates in the dashboard's screenshots (`portwatch dashboard screenshots`)
[ -d /usr/share/fonts/truetype/wqy ] || need_apt+=(fonts-wqy-zenhei)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.portwatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing portwatch and its dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev]'
  touch "$stamp"
fi

# an independent c2sp.org/tlog-witness implementation for the interoperation tests
# (tests/controller/ledger/test_witness_interop.py): aics-witness needs Python >= 3.12,
# so it gets a venv of its own; without one those tests are skipped and say why
if [ ! -x .venv-interop/bin/aics-witness ]; then
  py=""
  for c in python3.13 python3.12 $(ls -d "$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null); do
    if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1; then
      py=$c
      break
    fi
  done
  if [ -n "$py" ]; then
    echo "setup: installing aics-witness 0.1.0 into .venv-interop ($py)"
    "$py" -m venv .venv-interop
    .venv-interop/bin/pip install -q 'aics-witness==0.1.0' 'aics-tlog==0.2.1' \
      || echo "setup: aics-witness did not install: the witness interop tests will skip" >&2
  else
    echo "setup: no Python >= 3.12 here: the witness interop tests will skip" >&2
  fi
fi

bash scripts/link-portwatch.sh  # `portwatch` on PATH, so printed commands run as printed
