#!/usr/bin/env bash
# Makes sure the venv with the Python clients (requirements.txt) exists, then prints its
# python. The venv lives outside the repo, ${FJORD_CACHE:-~/.cache/fjord}/venv, and is
# rebuilt only when requirements.txt changes.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${FJORD_CACHE:-$HOME/.cache/fjord}/venv"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing the Python clients into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
