#!/usr/bin/env bash
# Runs the Python client suites (kafka-python, confluent-kafka) against BOOTSTRAP.
#   e2e/python/run.sh BOOTSTRAP [pytest args...]
# BOOTSTRAP is - for a suite that starts its own cluster (test_txn_confluent_kafka.py).
# The clients come from PyPI into a venv outside the repo (see venv.sh).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 BOOTSTRAP [pytest args...]" >&2; exit 2; }
bootstrap="$1"; shift
python="$("$HERE/venv.sh")"
cd "$HERE"
[[ $bootstrap != - ]] || bootstrap=""
FJORD_BOOTSTRAP="$bootstrap" exec "$python" -m pytest "$@"
