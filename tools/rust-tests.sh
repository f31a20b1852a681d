#!/usr/bin/env bash
# The workspace's Rust tests, several test binaries at a time:
#
#   tools/rust-tests.sh            # RUST_TEST_JOBS binaries at once (default 3),
#                                  # RUST_TEST_THREADS tests within each (default 2)
#
# Most of the time of the e2e binaries is spent waiting on real broker processes
# (failovers, timeouts, restarts), not on the CPU, so running binaries side by side
# shortens the step without changing what any test checks. Tests that share a machine
# resource lease it (loopback address blocks: e2e/src/cluster.rs; ports: free_ports_on).
# Each binary's output is printed in one piece when it ends, with its time; a failing
# binary's whole output is printed. Exits non-zero if a build or any binary failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${RUST_TEST_JOBS:-3}"
threads="${RUST_TEST_THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export FJORD_BIN="${FJORD_BIN:-$CARGO_TARGET_DIR/debug/fjord}"

cargo build --workspace --bins || exit 1
list=$(mktemp)
out=$(mktemp -d)
trap 'rm -rf "$list" "$out"' EXIT
# One line per test binary: its package directory (cargo runs a test binary there) and
# its path.
cargo test --workspace --no-run --message-format=json-render-diagnostics |
  python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
' > "$list" || exit 1
# Largest first: the broker's unit tests (the most CPU) start at once rather than last.
while IFS=$'\t' read -r dir exe; do
  printf '%s\t%s\t%s\n' "$(stat -c %s "$exe")" "$dir" "$exe"
done < "$list" | sort -rn | cut -f2- > "$list.sorted" && mv "$list.sorted" "$list"
echo "$(wc -l < "$list") test binaries, $jobs at a time"

# run_one DIR EXE: runs one binary, its output to a file, one summary line.
run_one() {
  local dir="$1" exe="$2" name log start rc
  name="$(basename "$dir")/$(basename "$exe")"
  log="$out/$(basename "$exe").log"
  start=$SECONDS
  (cd "$dir" && "$exe" --test-threads="$threads") > "$log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]]; then
    echo "ok     $name ($((SECONDS - start))s): $(grep -a '^test result' "$log" | tail -1)"
  else
    echo "FAILED $name ($((SECONDS - start))s), exit $rc:"
    cat "$log"
    touch "$out/failed"
  fi
}
export -f run_one
export out threads
tr '\t' '\n' < "$list" | xargs -d '\n' -n 2 -P "$jobs" bash -c 'run_one "$1" "$2"' _

doc_rc=0
cargo test --workspace --doc -q || doc_rc=1
[[ ! -e "$out/failed" && $doc_rc -eq 0 ]]
