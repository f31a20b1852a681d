#!/usr/bin/env bash
# Exactly-once under a broker kill, with the clients people use it through: Spring Kafka's
# KafkaTransactionManager (e2e/spring, JUnit tag "eos") and Kafka Streams with
# exactly_once_v2 (e2e/streams). Each test starts its own 3-broker cluster
# (e2e/eos/cluster.sh), kills one broker with SIGKILL mid-run and starts it again, then
# checks the read_committed output holds every input exactly once.
#
#   FJORD_BIN=target/debug/fjord e2e/eos/run.sh     # against Fjord
#   EOS_BROKER=kafka e2e/eos/run.sh                  # against Apache Kafka 4.4
#
# SUITES picks a subset of "spring streams". One line per suite, then "N passed, N
# failed"; Maven's output stays in $LOG_DIR. Exits 1 if any suite failed.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITES="${SUITES:-spring streams}"
EOS_BROKER="${EOS_BROKER:-fjord}"
export EOS_BROKER
LOG_DIR="${LOG_DIR:-${FJORD_CACHE:-$HOME/.cache/fjord}/eos-logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOG_DIR"
for tool in java mvn curl; do
  command -v "$tool" > /dev/null || { echo "eos/run.sh: $tool is required but not installed" >&2; exit 2; }
done
if [[ $EOS_BROKER == fjord ]]; then
  [[ -x "${FJORD_BIN:-}" ]] || { echo "eos/run.sh: set FJORD_BIN to the fjord binary (or EOS_BROKER=kafka)" >&2; exit 2; }
  FJORD_BIN="$(cd "$(dirname "$FJORD_BIN")" && pwd)/$(basename "$FJORD_BIN")"
  export FJORD_BIN
fi

build_root="$(mktemp -d)"
trap 'rm -rf "$build_root"' EXIT
passed=0
failed=0
for suite in $SUITES; do
  case "$suite" in
    # Its own build dir: the client suites may build the same pom at the same time.
    spring) cmd=(mvn -B -f "$HERE/../spring/pom.xml" -P eos test -Dfjord.build.root="$build_root/spring") ;;
    streams) cmd=(mvn -B -f "$HERE/../streams/pom.xml" test) ;;
    *) echo "eos/run.sh: unknown suite '$suite'" >&2; exit 2 ;;
  esac
  log="$LOG_DIR/$suite.log"
  start=$SECONDS
  if "${cmd[@]}" > "$log" 2>&1; then
    passed=$((passed + 1))
    echo "PASS eos-$suite against $EOS_BROKER ($((SECONDS - start))s)"
  else
    failed=$((failed + 1))
    echo "FAIL eos-$suite against $EOS_BROKER ($((SECONDS - start))s; log $log)"
    grep -E '^eos: |Tests run:|AssertionError|FAIL' "$log" | tail -n 25 | sed 's/^/    /'
  fi
done
echo "logs: $LOG_DIR"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
