#!/usr/bin/env bash
# Kafka's own command-line tools (from the Apache Kafka jars, see `apache-kafka.sh tool`)
# against a broker, each checked on what it prints: the admin APIs as operators meet them.
#
#   e2e/kafka-tools.sh BOOTSTRAP
#
# One function per tool, `check_<tool>`, listed in CHECKS at the end (CHECKS in the
# environment picks a subset). Each creates its own topic (replication factor
# FJORD_REPLICATION_FACTOR, default 1), prints "ok <tool>: ..." per passed step and
# "FAIL <tool>: ..." per failed one, and returns non-zero on a failure. Exits 1 if any
# check failed. Passes against Apache Kafka 4.4 as against Fjord: it checks Kafka's
# behaviour. To add a tool: write check_<tool> with the helpers below and append it to
# CHECKS.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 BOOTSTRAP" >&2; exit 2; }
bootstrap="$1"
rf="${FJORD_REPLICATION_FACTOR:-1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tool() { "$HERE/apache-kafka.sh" tool "$@"; }
ok() { echo "ok $*"; }
fail() { echo "FAIL $*"; return 1; }

# new_topic PREFIX PARTITIONS: creates a topic with a random suffix and prints its name.
new_topic() {
  local name
  name="$1-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  tool kafka-topics --bootstrap-server "$bootstrap" --create --topic "$name" \
    --partitions "$2" --replication-factor "$rf" >&2 || return 1
  echo "$name"
}

# produce TOPIC < lines: one record per line ("key:value" lines are keyed), acks=all.
produce() {
  tool kafka-console-producer --bootstrap-server "$bootstrap" --topic "$1" \
    --command-property acks=all --reader-property parse.key=true --reader-property key.separator=:
}

# offsets TOPIC TIME: "partition:offset" lines of kafka-get-offsets (-2 earliest, -1 latest).
offsets() {
  tool kafka-get-offsets --bootstrap-server "$bootstrap" --topic "$1" --time "$2" \
    | sed -n "s/^$1://p" | sort -n
}

# expect_eq WHAT GOT WANT: ok or FAIL with both values.
expect_eq() {
  if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1: got '$2', want '$3'"; fi
}

# kafka-delete-records: trims a partition; the earliest offset and a consumer reading
# from the beginning see the new start; -1 trims to the high watermark; past it is refused.
check_delete_records() {
  local t rc=0 out
  t="$(new_topic e2e-tools-delete 1)" || { fail "kafka-delete-records: topic not created"; return 1; }
  for i in $(seq 0 9); do echo "k$i:v$i"; done | produce "$t" \
    || fail "kafka-delete-records: producing to $t failed" || return 1
  expect_eq "kafka-delete-records: latest offset before" "$(offsets "$t" -1)" "0:10" || rc=1
  delete() {
    printf '{"partitions":[{"topic":"%s","partition":0,"offset":%s}],"version":1}\n' "$t" "$1" \
      > "$work/delete.json"
    tool kafka-delete-records --bootstrap-server "$bootstrap" --offset-json-file "$work/delete.json" 2>&1
  }
  out="$(delete 4)"
  if grep -qP "^partition: $t-0\tlow_watermark: 4$" <<<"$out"; then
    ok "kafka-delete-records: low watermark 4"
  else
    fail "kafka-delete-records: offset 4 answered: $out" || rc=1
  fi
  expect_eq "kafka-delete-records: earliest offset after" "$(offsets "$t" -2)" "0:4" || rc=1
  expect_eq "kafka-delete-records: latest offset unchanged" "$(offsets "$t" -1)" "0:10" || rc=1
  local consumed
  consumed="$(tool kafka-console-consumer --bootstrap-server "$bootstrap" --topic "$t" \
    --from-beginning --max-messages 6 --timeout-ms 30000 2>/dev/null | tr '\n' ' ')"
  expect_eq "kafka-console-consumer: reads from the new start" "$consumed" "v4 v5 v6 v7 v8 v9 " || rc=1
  out="$(delete 11)"
  if grep -qP "^partition: $t-0\terror: .*OffsetOutOfRange" <<<"$out"; then
    ok "kafka-delete-records: past the high watermark is OFFSET_OUT_OF_RANGE"
  else
    fail "kafka-delete-records: offset 11 answered: $out" || rc=1
  fi
  out="$(delete -1)"
  if grep -qP "^partition: $t-0\tlow_watermark: 10$" <<<"$out"; then
    ok "kafka-delete-records: -1 trims to the high watermark"
  else
    fail "kafka-delete-records: offset -1 answered: $out" || rc=1
  fi
  expect_eq "kafka-delete-records: earliest offset at the end" "$(offsets "$t" -2)" "0:10" || rc=1
  tool kafka-topics --bootstrap-server "$bootstrap" --delete --topic "$t" >/dev/null 2>&1
  return $rc
}

# log_dirs TOPIC: "broker partition size offsetLag error" lines from kafka-log-dirs'
# JSON (the line after its two status lines), one per replica of TOPIC.
log_dirs() {
  tool kafka-log-dirs --bootstrap-server "$bootstrap" --describe --topic-list "$1" 2>&1 \
    | python3 -c '
import json, sys
topic = sys.argv[1]
lines = sys.stdin.read().splitlines()
docs = [json.loads(l) for l in lines if l.startswith("{")]
if not docs:
    sys.exit("kafka-log-dirs printed no JSON: " + " | ".join(lines[-3:]))
for b in docs[0]["brokers"]:
    for d in b["logDirs"]:
        if d["error"] is not None:
            print(b["broker"], "-", 0, 0, d["error"])
        for p in d["partitions"]:
            if p["partition"].rsplit("-", 1)[0] == topic and not p["isFuture"]:
                print(b["broker"], p["partition"], p["size"], p["offsetLag"], "none")
' "$1" | sort
}

# kafka-log-dirs: every replica of a topic is listed, without error, and each one's
# size grows once records are produced to it (followers may take a moment).
check_log_dirs() {
  local t rc=0 before after
  t="$(new_topic e2e-tools-logdirs 2)" || { fail "kafka-log-dirs: topic not created"; return 1; }
  before="$(log_dirs "$t")"
  expect_eq "kafka-log-dirs: replicas listed" "$(grep -c " none$" <<<"$before")" "$((2 * rf))" || rc=1
  expect_eq "kafka-log-dirs: partitions listed" \
    "$(awk '{print $2}' <<<"$before" | sort -u | tr '\n' ' ')" "$t-0 $t-1 " || rc=1
  for i in $(seq 0 199); do echo "key$i:value-$i"; done | produce "$t" \
    || fail "kafka-log-dirs: producing to $t failed" || return 1
  local deadline=$((SECONDS + 60)) grown=0
  while ((SECONDS < deadline)); do
    after="$(log_dirs "$t")"
    grown="$(join <(awk '{print $1"/"$2, $3}' <<<"$before" | sort) \
                  <(awk '{print $1"/"$2, $3}' <<<"$after" | sort) \
             | awk '$3 > $2' | wc -l)"
    ((grown == 2 * rf)) && break
  done
  expect_eq "kafka-log-dirs: every replica grew after producing" "$grown" "$((2 * rf))" || rc=1
  tool kafka-topics --bootstrap-server "$bootstrap" --delete --topic "$t" >/dev/null 2>&1
  return $rc
}

CHECKS="${CHECKS:-check_delete_records check_log_dirs}"
failed=0
for check in $CHECKS; do
  echo "--- $check" >&2
  "$check" || failed=$((failed + 1))
done
echo "$failed of $(wc -w <<<"$CHECKS") tool checks failed"
[[ $failed -eq 0 ]]
