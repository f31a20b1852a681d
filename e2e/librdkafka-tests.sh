#!/usr/bin/env bash
# Runs librdkafka's own test programs (the tests/ directory of the librdkafka that the
# rdkafka-sys crate of Cargo.lock bundles, its test-runner built once by
# tools/deps.sh) against a running cluster, one test-runner process per test:
#
#   e2e/librdkafka-tests.sh BOOTSTRAP [TEST...]    # e.g. ... 127.0.0.1:29192 0012 0102
#
# e2e/librdkafka-tests.list says which tests run and what is expected of each: pass,
# xfail (fails on Fjord for a reason the list names, an issue item being built; expected
# to pass against Apache Kafka) or skip (not run anywhere, with the reason). TESTs given
# on the command line run those of the list only.
#
# One line per test: "passed", "failed", "skipped", "xfail" (an expected failure that
# failed) or "XPASS" (an expected failure that passed: the list is out of date), with
# the failure librdkafka reported; then a summary line. Exits 1 on a failure of a test
# expected to pass and on an XPASS, 2 on bad usage. Logs (one per test) in $LOG_DIR.
#
# Environment:
#   LIBRDKAFKA_TESTS_SET   ci (the quick subset the test command runs) or all (default)
#   LIBRDKAFKA_BROKER      fjord (default) or kafka: against kafka, xfail tests must pass
#   LIBRDKAFKA_NUM_PARTITIONS  the cluster's num.partitions (default 1): the tests the list
#                          marks "p4" expect librdkafka's default of 4 for the topics they
#                          auto-create, and are skipped below that
#   LIBRDKAFKA_TEST_TIMEOUT_S  the most one test may take, end to end (default 600)
#   TEST_TIMEOUT_MULTIPLIER    librdkafka's own timeouts are multiplied by it (default 2:
#                          a small shared machine)
#   TEST_KAFKA_VERSION     the broker version the tests assume (default 4.4.0)
#   LIBRDKAFKA_TESTS_DIR   a built tests/ directory (default: tools/deps.sh builds one)
#   LOG_DIR                where the logs go (default under ${FJORD_CACHE:-~/.cache/fjord})
#   KAFKA_CLASSPATH_FILE   Apache Kafka's classpath, for tests that run a Java client
#                          (0098); default: tools/deps.sh resolves it
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
[[ $# -ge 1 ]] || { echo "usage: $0 BOOTSTRAP [TEST...]" >&2; exit 2; }
bootstrap="$1"; shift
only=("$@")
LIST="$HERE/librdkafka-tests.list"
SET="${LIBRDKAFKA_TESTS_SET:-all}"
BROKER="${LIBRDKAFKA_BROKER:-fjord}"
TIMEOUT_S="${LIBRDKAFKA_TEST_TIMEOUT_S:-600}"
MULTIPLIER="${TEST_TIMEOUT_MULTIPLIER:-2}"
NUM_PARTITIONS="${LIBRDKAFKA_NUM_PARTITIONS:-1}"
case "$SET" in ci|all) ;; *) echo "LIBRDKAFKA_TESTS_SET must be ci or all, not '$SET'" >&2; exit 2 ;; esac
case "$BROKER" in fjord|kafka) ;; *) echo "LIBRDKAFKA_BROKER must be fjord or kafka, not '$BROKER'" >&2; exit 2 ;; esac
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
LOG_DIR="${LOG_DIR:-$CACHE/librdkafka-tests-logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOG_DIR"
LOG_DIR="$(cd "$LOG_DIR" && pwd)"

# shellcheck source=tools/deps.sh
source "$ROOT/tools/deps.sh"
tests_dir="${LIBRDKAFKA_TESTS_DIR:-}"
if [[ -z $tests_dir ]]; then
  tests_dir=$(deps_librdkafka_tests) || { echo "librdkafka-tests.sh: no test-runner" >&2; exit 2; }
fi
[[ -x "$tests_dir/test-runner" ]] || { echo "librdkafka-tests.sh: no $tests_dir/test-runner" >&2; exit 2; }

# test.topic.random: every run creates topics of its own, so runs against one cluster do
# not see each other's records.
conf="$LOG_DIR/test.conf"
cat > "$conf" <<EOF
bootstrap.servers=$bootstrap
test.timeout.multiplier=$MULTIPLIER
test.topic.random=true
EOF

# A Kafka installation as librdkafka's Java helpers expect one (libs/ with the client
# jars, bin/kafka-run-class.sh), made from the Maven classpath; only the tests that run
# a Java client get it.
java_kafka_path() {
  local dir="$LOG_DIR/kafka-path" cpfile
  if [[ ! -d $dir ]]; then
    cpfile="${KAFKA_CLASSPATH_FILE:-$(deps_kafka_classpath)}" || return 1
    mkdir -p "$dir/libs" "$dir/bin"
    tr ':' '\n' < "$cpfile" | while read -r jar; do
      [[ -n $jar ]] && ln -sf "$jar" "$dir/libs/"
    done
    cat > "$dir/bin/kafka-run-class.sh" <<'EOF'
#!/usr/bin/env bash
# kafka-run-class.sh of a Kafka release: java with every jar of libs/ on the classpath.
exec java -Xmx256m -cp "${CLASSPATH:+$CLASSPATH:}$(dirname "$0")/../libs/*" "$@"
EOF
    chmod +x "$dir/bin/kafka-run-class.sh"
  fi
  echo "$dir"
}

# The summary rows of test-runner's log: "NAME|STATE|failure", colours removed.
summary_rows() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" |
    sed -n -E 's/^\| *([0-9]{4}_[A-Za-z0-9_]+) *\| *([A-Z_]+) *\| *[0-9.]+s *\|(.*)$/\1|\2|\3/p' |
    sed -E 's/\| +/|/; s/ +$//'
}

# The first failure test-runner logged ("### Test "NAME" failed at WHERE: ###" and the
# reason on the next line), for a run that ended before its summary.
first_failure() {
  sed 's/\x1b\[[0-9;]*m//g' "$1" | awk '
    /^### Test "/ && !/"<MAIN>"/ { where = $0; sub(/^### Test /, "", where); sub(/ at [A-Z][a-z][a-z] .*/, "", where); getline; print where ": " $0; found = 1; exit }
    END { if (!found) print "no summary (crashed?)" }'
}

# run_one TEST QUICK: runs one test number (every sub-test named NNNN_* that needs a
# broker), in quick mode if QUICK is -Q, and prints "passed", "failed|why" or
# "skipped|why".
run_one() {
  local t="$1" quick="$2" log="$LOG_DIR/$t.log" rc=0 kafka_path="" rows failed skipped passed
  if [[ $t == 0098 ]]; then
    kafka_path=$(java_kafka_path) || { echo "failed|no Apache Kafka classpath for the Java producer"; return; }
  fi
  # -L: no broker-less (mock cluster) tests; -E: no socket-emulation tests; -Q: quick
  # mode, librdkafka's CI mode: fewer messages and iterations, and sub-tests not marked
  # quick are left out (the list's "noquick" runs a test whole).
  (cd "$tests_dir" && env TESTS="$t" TEST_KAFKA_VERSION="${TEST_KAFKA_VERSION:-4.4.0}" \
    RDKAFKA_TEST_CONF="$conf" ${kafka_path:+KAFKA_PATH="$kafka_path"} \
    LD_LIBRARY_PATH="$tests_dir/../src:$tests_dir/../src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    timeout -k 10 "$TIMEOUT_S" ./test-runner -L -E $quick -p1) < /dev/null > "$log" 2>&1 || rc=$?
  rows=$(summary_rows "$log")
  failed=$(grep -E '^[^|]+\|(FAILED|RUNNING)\|' <<< "$rows" | head -n 3 |
    awk -F'|' '{ printf "%s%s: %s", sep, $1, ($2 == "RUNNING" ? "did not finish" : $3); sep = "; " }')
  passed=$(grep -c -E '^[^|]+\|PASSED\|' <<< "$rows")
  skipped=$(grep -E '^[^|]+\|SKIPPED\|' <<< "$rows" | grep -v 'negative test flags' | head -n 1 | cut -d'|' -f3)
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    echo "failed|timed out after ${TIMEOUT_S}s${failed:+; $failed}"
  elif [[ $rc -ne 0 || -n $failed ]]; then
    echo "failed|${failed:-exit $rc: $(first_failure "$log")}"
  elif [[ $passed -eq 0 ]]; then
    echo "skipped|${skipped:-no sub-test ran}"
  else
    echo "passed"
  fi
}

n_pass=0 n_fail=0 n_skip=0 n_xfail=0 n_xpass=0
start_all=$SECONDS
while read -r t sets expect reason; do
  [[ -z $t || $t == \#* ]] && continue
  if [[ ${#only[@]} -gt 0 ]]; then
    [[ " ${only[*]} " == *" $t "* ]] || continue
  elif [[ $SET == ci && ",$sets," != *,ci,* ]]; then
    continue
  fi
  [[ $BROKER == kafka && $expect == xfail ]] && expect=pass
  if [[ $expect == skip ]]; then
    n_skip=$((n_skip + 1)); echo "skipped $t: $reason"; continue
  fi
  if [[ ",$sets," == *,p4,* && $NUM_PARTITIONS -lt 4 ]]; then
    n_skip=$((n_skip + 1))
    echo "skipped $t: auto-creates topics and expects 4 partitions in them (librdkafka's default scenario); the cluster's num.partitions is $NUM_PARTITIONS (LIBRDKAFKA_NUM_PARTITIONS)"
    continue
  fi
  quick=-Q
  [[ ",$sets," == *,noquick,* ]] && quick=
  start=$SECONDS
  IFS='|' read -r outcome why <<< "$(run_one "$t" "$quick")"
  secs=$((SECONDS - start))
  case "$outcome/$expect" in
    passed/pass) n_pass=$((n_pass + 1)); echo "passed  $t (${secs}s)" ;;
    passed/xfail) n_xpass=$((n_xpass + 1))
      echo "XPASS   $t (${secs}s): listed as an expected failure ($reason) but passed: take it off the list" ;;
    failed/xfail) n_xfail=$((n_xfail + 1)); echo "xfail   $t (${secs}s): $reason; $why" ;;
    failed/*) n_fail=$((n_fail + 1)); echo "failed  $t (${secs}s): $why; log $LOG_DIR/$t.log" ;;
    skipped/*) n_skip=$((n_skip + 1)); echo "skipped $t (${secs}s): librdkafka skipped it: $why" ;;
  esac
done < "$LIST"

echo "logs: $LOG_DIR"
echo "$n_pass passed, $n_fail failed, $n_xfail expected failures, $n_xpass unexpected passes, $n_skip skipped ($((SECONDS - start_all))s)"
[[ $n_fail -eq 0 && $n_xpass -eq 0 ]]
