#!/usr/bin/env bash
# Puts this checkout's `portwatch` on PATH, so the commands the README and the demo print run
# as printed in a fresh shell. Called by scripts/setup.sh; safe to run again.
#
# As root, with the bin dir writable: a symlink $PORTWATCH_BIN_DIR/portwatch (default
# /usr/local/bin, on every login shell's PATH) -> .venv/bin/portwatch. A different file
# already there is left alone, with a warning. Otherwise it prints the line that puts it on
# PATH. Never fails setup: a missing link costs a longer command, not a broken install.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd -P)"
entry="$root/.venv/bin/portwatch"
bin_dir="${PORTWATCH_BIN_DIR:-/usr/local/bin}"
link="$bin_dir/portwatch"
path_line="export PATH=\"$root/.venv/bin:\$PATH\""

if [ ! -x "$entry" ]; then
  echo "setup: $entry is missing: scripts/setup.sh installs it" >&2
  exit 0
fi
same_as_entry() { [ "$(readlink -f "$1" 2>/dev/null)" = "$(readlink -f "$entry")" ]; }

if same_as_entry "$link"; then
  exit 0  # linked by an earlier run
fi
if [ "$(id -u)" = 0 ] && [ -d "$bin_dir" ] && [ -w "$bin_dir" ]; then
  if [ -L "$link" ] && [ ! -e "$link" ]; then
    # a link into a checkout that is gone (a removed clone): nobody's file, safe to replace
    echo "setup: $link pointed to $(readlink "$link"), which is gone: replaced" >&2
    ln -sfn "$entry" "$link"
    echo "setup: linked $link -> $entry"
  elif [ -e "$link" ] || [ -L "$link" ]; then
    echo "setup: $link exists and is not this checkout's portwatch" \
         "($(readlink -f "$link" 2>/dev/null || echo "$link")): left alone." >&2
    echo "setup: to run this checkout's portwatch in a shell: $path_line" >&2
  else
    ln -s "$entry" "$link"
    echo "setup: linked $link -> $entry"
  fi
  exit 0
fi
# Found on PATH already? The virtualenv's own bin does not count: a fresh shell lacks it.
IFS=: read -r -a dirs <<< "${PATH:-}"
for dir in "${dirs[@]}"; do
  if [ -n "$dir" ] && [ "$(readlink -f "$dir")" != "$root/.venv/bin" ] \
      && same_as_entry "$dir/portwatch"; then
    exit 0
  fi
done
echo "setup: portwatch is not on PATH; to put it there (add the line to ~/.profile to keep it):"
echo "  $path_line"
