#!/usr/bin/env bash
# Makes sure the venv with the Python clients (requirements.txt) exists, then prints its
# python. The venv lives outside the repo, ${FJORD_CACHE:-~/.cache/fjord}/venv, and is
# rebuilt only when requirements.txt changes. Another requirements file and venv name may
# be given (`venv.sh REQUIREMENTS NAME`, as the benchmark does for its own venv).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
requirements="${1:-$HERE/requirements.txt}"
venv="${FJORD_CACHE:-$HOME/.cache/fjord}/${2:-venv}"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "installing the Python clients into $venv" >&2
  if ! python3 -m venv "$venv" >&2; then
    # Debian's own python3 keeps ensurepip in a separate package.
    sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv >&2
    rm -rf "$venv"; python3 -m venv "$venv" >&2
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
