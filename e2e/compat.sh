#!/usr/bin/env bash
# Runs every client compatibility suite against one broker and sums them up:
#
#   e2e/compat.sh BOOTSTRAP            # e.g. e2e/compat.sh 127.0.0.1:19092
#
# Suites: kcat (librdkafka, from Debian), kafka-python and confluent-kafka (PyPI, in a
# venv under ${FJORD_CACHE:-~/.cache/fjord}), the Java kafka-clients suite once per
# version in JAVA_CLIENT_VERSIONS (default "3.9.2 4.4.0": the last 3.x line and the newest),
# and spring (Spring Kafka with spring-context). Each installs what it needs on first use.
# One summary line per suite, then "N passed, N failed" (suites; ", N skipped" follows when
# a suite was skipped); full logs stay in $LOG_DIR. Exits 1 if any suite failed.
# readme: the README's worked examples (e2e/readme.sh: their own broker, from FJORD_BIN).
# librdkafka: librdkafka's own test programs (e2e/librdkafka-tests.sh, the quick "ci" set
# of e2e/librdkafka-tests.list); they assume a 3-broker cluster, so they run only with
# FJORD_REPLICATION_FACTOR=3 and are skipped otherwise.
# kafka-tools: Kafka's own shell tools (e2e/kafka-tools.sh: kafka-delete-records,
# kafka-log-dirs, ...), from the Apache Kafka jars.
# SUITES picks a subset: any of the suite names in this comment.
# COMPAT_GROUPS=0 leaves out the consumer-group tests (JUnit tag and pytest marker
# "groups"; the spring suite is all groups, so it is skipped); default 1, included.
# FJORD_REPLICATION_FACTOR: replication factor of the topics the suites create (default 1;
# 3 against a 3-broker cluster). Topics created without one get the broker's default.
# TLS suites (kcat-ssl: the kcat suite over SSL; python-ssl: confluent-kafka and
# kafka-python over SSL, refusals included) run against FJORD_SSL_BOOTSTRAP, an SSL
# listener with ssl.client.auth=required, with the certificates e2e/tls/certs.sh wrote to
# FJORD_SSL_DIR; without both they are skipped.
# kcat-sasl-ssl: the kcat suite with SCRAM-SHA-512 over FJORD_SASL_SSL_BOOTSTRAP (below).
# FJORD_SSL_NOCERT_BOOTSTRAP, an SSL listener with ssl.client.auth=none: python-ssl and the
# Java suites also go over it without a client certificate.
# python-sasl: confluent-kafka and kafka-python with SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN
# against FJORD_SASL_BOOTSTRAP, a SASL_PLAINTEXT listener enabling all three, and
# FJORD_SASL_SSL_BOOTSTRAP, a SASL_SSL one asking for no client certificate (its CA in
# FJORD_SSL_DIR), as FJORD_SASL_USER / FJORD_SASL_PASSWORD (a super user with both SCRAM
# credentials); and the ACL refusals of FJORD_SASL_DENIED_USER / FJORD_SASL_DENIED_PASSWORD
# (the broker runs the standard authorizer with allow.everyone.if.no.acl.found=true);
# skipped without FJORD_SASL_BOOTSTRAP and FJORD_SASL_USER. The Java and Spring suites
# read the same variables and skip what they lack.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 BOOTSTRAP" >&2; exit 2; }
bootstrap="$1"
JAVA_CLIENT_VERSIONS="${JAVA_CLIENT_VERSIONS:-3.9.2 4.4.0}"
SUITES="${SUITES:-kcat kafka-python confluent-kafka java spring kafka-tools kcat-ssl python-ssl python-sasl kcat-sasl-ssl readme librdkafka}"
ssl_bootstrap="${FJORD_SSL_BOOTSTRAP:-}"
ssl_dir="${FJORD_SSL_DIR:-}"
COMPAT_GROUPS="${COMPAT_GROUPS:-1}"
case "$COMPAT_GROUPS" in
  1) pytest_groups=(); maven_groups=() ;;
  0) pytest_groups=(-m "not groups"); maven_groups=(-DexcludedGroups=groups) ;;
  *) echo "compat.sh: COMPAT_GROUPS must be 0 or 1, not '$COMPAT_GROUPS'" >&2; exit 2 ;;
esac
CACHE="${FJORD_CACHE:-$HOME/.cache/fjord}"
LOG_DIR="${LOG_DIR:-$CACHE/compat-logs/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$LOG_DIR"
# Maven builds of this run, apart from those of any run beside it (tools/test.sh runs
# the one-broker and the 3-broker passes at once).
build_root="$(mktemp -d)"
trap 'rm -rf "$build_root"' EXIT

passed=0
failed=0
skipped=0

# run_suite NAME COMMAND...: runs one suite with its output in $LOG_DIR/NAME.log, then
# prints "PASS|FAIL NAME (detail, seconds)" where the detail comes from the log.
run_suite() {
  local name="$1"; shift
  local log="$LOG_DIR/$name.log" start=$SECONDS rc=0
  echo "--- $name: $*" >&2
  "$@" > "$log" 2>&1 || rc=$?
  local secs=$((SECONDS - start)) detail
  detail="$(summary_of "$name" "$log")"
  if [[ $rc -eq 0 ]]; then
    passed=$((passed + 1))
    echo "PASS $name ($detail, ${secs}s)"
  else
    failed=$((failed + 1))
    echo "FAIL $name (exit $rc; $detail, ${secs}s; log $log)"
    tail -n 25 "$log" | sed 's/^/    /'
  fi
}

summary_of() {
  local name="$1" log="$2"
  case "$name" in
    kcat|kcat-ssl|kcat-sasl-ssl) echo "$(grep -c '^ok ' "$log") codecs ok, $(grep -c '^FAIL ' "$log") failed" ;;
    kafka-python|confluent-kafka|python-ssl|python-sasl)
      grep -E '^=+ .*(passed|failed|error|no tests ran).* =+$|^[0-9]+ (passed|failed)' "$log" \
        | tail -1 | sed -E 's/^=+ //; s/ =+$//' ;;
    readme) echo "$(grep -c '^ok ' "$log") blocks ok, $(grep -c '^FAIL ' "$log") failed" ;;
    librdkafka) grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1 ;;
    kafka-tools) echo "$(grep -c '^ok ' "$log") checks ok, $(grep -c '^FAIL ' "$log") failed" ;;
    java-*|spring)
      grep -E '^\[(INFO|ERROR|WARNING)\] Tests run: [0-9]+, Failures: [0-9]+, Errors: [0-9]+, Skipped: [0-9]+$' "$log" \
        | tail -1 | sed -E 's/^\[[A-Z]+\] //' ;;
  esac
}

need() { command -v "$1" >/dev/null || { echo "compat.sh: $1 is required but not installed" >&2; exit 2; }; }
need python3

for suite in $SUITES; do
  case "$suite" in
    # kcat.sh goes over SSL when FJORD_SSL_DIR is set and authenticates when
    # FJORD_SASL_MECHANISM is: the plain suite runs without either.
    kcat) run_suite kcat env -u FJORD_SSL_DIR -u FJORD_SASL_MECHANISM "$HERE/kcat.sh" "$bootstrap" ;;
    kafka-python)
      run_suite kafka-python "$HERE/python/run.sh" "$bootstrap" "${pytest_groups[@]}" \
        test_checks.py test_group_checks.py test_kafka_python.py test_groups_kafka_python.py ;;
    confluent-kafka)
      run_suite confluent-kafka "$HERE/python/run.sh" "$bootstrap" "${pytest_groups[@]}" \
        test_confluent_kafka.py test_groups_confluent_kafka.py ;;
    java)
      need java; need mvn
      for v in $JAVA_CLIENT_VERSIONS; do
        run_suite "java-$v" env FJORD_BOOTSTRAP="$bootstrap" \
          mvn -B -f "$HERE/java/pom.xml" test -Dkafka.version="$v" -Dfjord.build.root="$build_root/java" \
          "${maven_groups[@]}"
      done ;;
    spring)
      need java; need mvn
      if [[ $COMPAT_GROUPS == 0 ]]; then
        skipped=$((skipped + 1))
        echo "SKIP spring (COMPAT_GROUPS=0: it needs consumer groups)"
      else
        run_suite spring env FJORD_BOOTSTRAP="$bootstrap" mvn -B -f "$HERE/spring/pom.xml" test \
          -Dfjord.build.root="$build_root/spring"
      fi ;;
    kcat-ssl|python-ssl)
      if [[ -z $ssl_bootstrap || -z $ssl_dir ]]; then
        skipped=$((skipped + 1))
        echo "SKIP $suite (FJORD_SSL_BOOTSTRAP and FJORD_SSL_DIR not set)"
      elif [[ $suite == kcat-ssl ]]; then
        run_suite kcat-ssl env -u FJORD_SASL_MECHANISM FJORD_SSL_DIR="$ssl_dir" "$HERE/kcat.sh" "$ssl_bootstrap"
      else
        run_suite python-ssl env FJORD_SSL_DIR="$ssl_dir" "$HERE/python/run.sh" "$ssl_bootstrap" test_tls.py
      fi ;;
    python-sasl)
      if [[ -z ${FJORD_SASL_BOOTSTRAP:-} || -z ${FJORD_SASL_USER:-} ]]; then
        skipped=$((skipped + 1))
        echo "SKIP python-sasl (FJORD_SASL_BOOTSTRAP and FJORD_SASL_USER not set)"
      else
        run_suite python-sasl "$HERE/python/run.sh" "$FJORD_SASL_BOOTSTRAP" "${pytest_groups[@]}" \
          test_sasl.py test_acls.py
      fi ;;
    kcat-sasl-ssl)
      if [[ -z ${FJORD_SASL_SSL_BOOTSTRAP:-} || -z $ssl_dir || -z ${FJORD_SASL_USER:-} ]]; then
        skipped=$((skipped + 1))
        echo "SKIP kcat-sasl-ssl (FJORD_SASL_SSL_BOOTSTRAP, FJORD_SSL_DIR and FJORD_SASL_USER not set)"
      else
        run_suite kcat-sasl-ssl env FJORD_SSL_DIR="$ssl_dir" FJORD_SASL_MECHANISM=SCRAM-SHA-512 \
          "$HERE/kcat.sh" "$FJORD_SASL_SSL_BOOTSTRAP"
      fi ;;
    readme) run_suite readme "$HERE/readme.sh" ;;
    librdkafka)
      if [[ ${FJORD_REPLICATION_FACTOR:-1} -lt 3 ]]; then
        skipped=$((skipped + 1))
        echo "SKIP librdkafka (its tests assume a 3-broker cluster: FJORD_REPLICATION_FACTOR=3)"
      else
        run_suite librdkafka env LIBRDKAFKA_TESTS_SET=ci LOG_DIR="$LOG_DIR/librdkafka" \
          "$HERE/librdkafka-tests.sh" "$bootstrap"
      fi ;;
    kafka-tools) need java; need mvn; run_suite kafka-tools "$HERE/kafka-tools.sh" "$bootstrap" ;;
    *) echo "compat.sh: unknown suite '$suite'" >&2; exit 2 ;;
  esac
done

echo "logs: $LOG_DIR"
if [[ $skipped -gt 0 ]]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[[ $failed -eq 0 ]]
