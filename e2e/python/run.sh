#!/usr/bin/env bash
# Runs the Python client suites (kafka-python, confluent-kafka) against BOOTSTRAP.
#   e2e/python/run.sh BOOTSTRAP [pytest args...]
# The clients are installed from PyPI into a venv outside the repo, reused while
# requirements.txt is unchanged: ${FJORD_CACHE:-~/.cache/fjord}/venv.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 BOOTSTRAP [pytest args...]" >&2; exit 2; }
bootstrap="$1"; shift

venv="${FJORD_CACHE:-$HOME/.cache/fjord}/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing the Python clients into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$want" > "$stamp"
fi

cd "$HERE"
FJORD_BOOTSTRAP="$bootstrap" exec "$venv/bin/python" -m pytest "$@"
