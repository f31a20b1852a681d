#!/usr/bin/env bash
# Kafka's own command-line tools (from the Apache Kafka jars, see `apache-kafka.sh tool`)
# against a broker, each checked on what it prints: the admin APIs as operators meet them
# (kafka-delete-records, kafka-log-dirs, kafka-topics --describe with
# DescribeTopicPartitions paging, kafka-configs --entity-type groups and brokers,
# kafka-leader-election, kafka-transactions).
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

suffix() { head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# new_topic PREFIX PARTITIONS: creates a topic with a random suffix and prints its name.
new_topic() {
  local name
  name="$1-$(suffix)"
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

# kafka-topics --describe: the topic line, then one line per partition with a leader,
# also when each answer holds a single partition (the tool follows the cursor).
check_topics_describe() {
  local t rc=0 out
  t="$(new_topic e2e-tools-describe 3)" || { fail "kafka-topics: topic not created"; return 1; }
  out="$(tool kafka-topics --bootstrap-server "$bootstrap" --describe --topic "$t" \
    --partition-size-limit-per-response 1 2>&1)"
  if grep -qP "^Topic: $t\tTopicId: \S+\tPartitionCount: 3\tReplicationFactor: $rf\t" <<<"$out"; then
    ok "kafka-topics --describe: topic line"
  else
    fail "kafka-topics --describe: no topic line for $t in: $out" || rc=1
  fi
  local listed
  listed="$(grep -oP "^\tTopic: $t\tPartition: \K[0-9]+(?=\tLeader: [0-9]+\t)" <<<"$out" | tr '\n' ' ')"
  if [[ "$listed" == "0 1 2 " ]]; then
    ok "kafka-topics --describe: every partition led, one per page"
  else
    fail "kafka-topics --describe: partitions with a leader '$listed' in: $out" || rc=1
  fi
  out="$(tool kafka-topics --bootstrap-server "$bootstrap" --describe --topic "nope-$(suffix)" 2>&1)"
  if grep -q "UnknownTopicOrPartitionException\|does not exist" <<<"$out"; then
    ok "kafka-topics --describe: an unknown topic is reported"
  else
    fail "kafka-topics --describe: unknown topic answered: $out" || rc=1
  fi
  tool kafka-topics --bootstrap-server "$bootstrap" --delete --topic "$t" >/dev/null 2>&1
  return $rc
}

# kafka-configs --entity-type groups: a group config is set, described with its value,
# refused out of Kafka's bounds, and deleted back to its default.
check_configs_groups() {
  local g rc=0 out
  g="e2e-tools-group-$(suffix)"
  configs() { tool kafka-configs --bootstrap-server "$bootstrap" --entity-type groups --entity-name "$g" "$@" 2>&1; }
  out="$(configs --alter --add-config consumer.session.timeout.ms=50000,share.delivery.count.limit=3)"
  if grep -q "Completed updating config" <<<"$out"; then
    ok "kafka-configs --alter --entity-type groups"
  else
    fail "kafka-configs --alter: $out" || rc=1
  fi
  out="$(configs --describe)"
  if grep -q "consumer.session.timeout.ms=50000" <<<"$out" && grep -q "share.delivery.count.limit=3" <<<"$out"; then
    ok "kafka-configs --describe --entity-type groups: the values set"
  else
    fail "kafka-configs --describe: $out" || rc=1
  fi
  if out="$(configs --alter --add-config consumer.session.timeout.ms=60001)"; then
    fail "kafka-configs --alter: 60001 (above group.consumer.max.session.timeout.ms) accepted: $out" || rc=1
  else
    ok "kafka-configs --alter: a value out of Kafka's bounds is refused"
  fi
  configs --alter --delete-config consumer.session.timeout.ms >/dev/null
  out="$(configs --describe --all)"
  if grep -q "consumer.session.timeout.ms=45000" <<<"$out"; then
    ok "kafka-configs --describe --all: back to the default"
  else
    fail "kafka-configs --describe --all after delete: $out" || rc=1
  fi
  configs --alter --delete-config share.delivery.count.limit >/dev/null
  return $rc
}

# kafka-configs --entity-type brokers: the replication quota rates (KIP-73) are dynamic
# broker configs, set on one broker and as the cluster default, described with their
# source, refused when negative, and deleted again.
check_configs_brokers() {
  local id rc=0 out
  id="$(tool kafka-log-dirs --bootstrap-server "$bootstrap" --describe 2>/dev/null |
    sed -n 's/.*"broker":\([0-9]*\).*/\1/p' | head -1)"
  [[ -n "$id" ]] || { fail "kafka-log-dirs --describe: no broker id"; return 1; }
  brokers() { tool kafka-configs --bootstrap-server "$bootstrap" --entity-type brokers "$@" 2>&1; }
  out="$(brokers --entity-name "$id" --alter --add-config leader.replication.throttled.rate=1048576,follower.replication.throttled.rate=2097152)"
  if grep -q "Completed updating config" <<<"$out"; then
    ok "kafka-configs --alter --entity-type brokers --entity-name $id: the throttle rates"
  else
    fail "kafka-configs --alter broker $id: $out" || rc=1
  fi
  out="$(brokers --entity-name "$id" --describe)"
  if grep -q "leader.replication.throttled.rate=1048576.*DYNAMIC_BROKER_CONFIG" <<<"$out" &&
    grep -q "follower.replication.throttled.rate=2097152" <<<"$out"; then
    ok "kafka-configs --describe --entity-type brokers: the rates, as dynamic broker configs"
  else
    fail "kafka-configs --describe broker $id: $out" || rc=1
  fi
  out="$(brokers --entity-default --alter --add-config follower.replication.throttled.rate=3145728)"
  if grep -q "Completed updating default config" <<<"$out"; then
    ok "kafka-configs --alter --entity-default: the cluster default rate"
  else
    fail "kafka-configs --alter --entity-default: $out" || rc=1
  fi
  out="$(brokers --entity-default --describe)"
  if grep -q "follower.replication.throttled.rate=3145728" <<<"$out"; then
    ok "kafka-configs --describe --entity-default: the default rate"
  else
    fail "kafka-configs --describe --entity-default: $out" || rc=1
  fi
  if out="$(brokers --entity-name "$id" --alter --add-config leader.replication.throttled.rate=-1)"; then
    fail "kafka-configs --alter: a negative rate accepted: $out" || rc=1
  else
    ok "kafka-configs --alter: a negative rate is refused"
  fi
  brokers --entity-name "$id" --alter --delete-config leader.replication.throttled.rate,follower.replication.throttled.rate >/dev/null
  brokers --entity-default --alter --delete-config follower.replication.throttled.rate >/dev/null
  out="$(brokers --entity-name "$id" --describe)"
  if grep -q "throttled.rate" <<<"$out"; then
    fail "kafka-configs --delete-config: the rates are still set: $out" || rc=1
  else
    ok "kafka-configs --delete-config: the rates are gone"
  fi
  return $rc
}

# kafka-leader-election: on a healthy cluster every partition is on its preferred
# leader already; the tool says so for a named partition and succeeds for all of them.
check_leader_election() {
  local t rc=0 out
  t="$(new_topic e2e-tools-elect 2)" || { fail "kafka-leader-election: topic not created"; return 1; }
  local deadline=$((SECONDS + 30))
  for type in preferred unclean; do
    while :; do
      out="$(tool kafka-leader-election --bootstrap-server "$bootstrap" --election-type "$type" \
        --topic "$t" --partition 0 2>&1)"
      grep -q "Valid replica already elected for partitions $t-0" <<<"$out" && break
      # A new topic's leaders may still be settling.
      ((SECONDS < deadline)) || break
    done
    if grep -q "Valid replica already elected for partitions $t-0" <<<"$out"; then
      ok "kafka-leader-election --election-type $type: nothing to elect for $t-0"
    else
      fail "kafka-leader-election --election-type $type: $out" || rc=1
    fi
  done
  if out="$(tool kafka-leader-election --bootstrap-server "$bootstrap" --election-type preferred \
      --all-topic-partitions 2>&1)"; then
    ok "kafka-leader-election --all-topic-partitions"
  else
    fail "kafka-leader-election --all-topic-partitions: $out" || rc=1
  fi
  tool kafka-topics --bootstrap-server "$bootstrap" --delete --topic "$t" >/dev/null 2>&1
  return $rc
}

# kafka-transactions: a transactional producer (kafka-producer-perf-test in its
# transaction mode) commits; the tool lists and describes its transactional id as
# complete, describes the partition's producer without an open transaction, finds
# nothing hanging; a read_committed consumer reads every record.
check_transactions() {
  local t id rc=0 out
  t="$(new_topic e2e-tools-txn 1)" || { fail "kafka-transactions: topic not created"; return 1; }
  id="e2e-tools-txn-$(suffix)"
  out="$(tool kafka-producer-perf-test --topic "$t" --num-records 200 --record-size 100 \
    --throughput -1 --transactional-id "$id" --transaction-duration-ms 100 \
    --producer-props bootstrap.servers="$bootstrap" acks=all 2>&1)"
  if grep -q "200 records sent" <<<"$out"; then
    ok "kafka-producer-perf-test: 200 records in transactions"
  else
    fail "kafka-producer-perf-test: $out" || return 1
  fi
  out="$(tool kafka-transactions --bootstrap-server "$bootstrap" list 2>&1)"
  if grep -qP "^$id\s+\d+\s+\d+\s+CompleteCommit" <<<"$out"; then
    ok "kafka-transactions list: $id CompleteCommit"
  else
    fail "kafka-transactions list: $out" || rc=1
  fi
  out="$(tool kafka-transactions --bootstrap-server "$bootstrap" describe --transactional-id "$id" 2>&1)"
  if grep -qP "^\d+\s+$id\s+\d+\s+\d+\s+CompleteCommit" <<<"$out"; then
    ok "kafka-transactions describe: CompleteCommit"
  else
    fail "kafka-transactions describe: $out" || rc=1
  fi
  out="$(tool kafka-transactions --bootstrap-server "$bootstrap" describe-producers --topic "$t" \
    --partition 0 2>&1)"
  # Coordinator epoch and last sequence may be -1 (Kafka's transaction version 2).
  if grep -qP "^\d+\s+\d+\s+-?\d+\s+-?\d+\s+\d+\s+None" <<<"$out"; then
    ok "kafka-transactions describe-producers: no open transaction"
  else
    fail "kafka-transactions describe-producers: $out" || rc=1
  fi
  out="$(tool kafka-transactions --bootstrap-server "$bootstrap" find-hanging --topic "$t" 2>&1)"
  if [[ "$(grep -c "^$t" <<<"$out")" == 0 ]] && grep -q "^Topic" <<<"$out"; then
    ok "kafka-transactions find-hanging: none"
  else
    fail "kafka-transactions find-hanging: $out" || rc=1
  fi
  local consumed
  consumed="$(tool kafka-console-consumer --bootstrap-server "$bootstrap" --topic "$t" \
    --from-beginning --isolation-level read_committed --max-messages 200 --timeout-ms 30000 \
    2>/dev/null | wc -l)"
  expect_eq "kafka-console-consumer read_committed: every committed record" "$consumed" 200 || rc=1
  tool kafka-topics --bootstrap-server "$bootstrap" --delete --topic "$t" >/dev/null 2>&1
  return $rc
}

CHECKS="${CHECKS:-check_delete_records check_log_dirs check_topics_describe check_configs_groups check_configs_brokers check_leader_election check_transactions}"
failed=0
for check in $CHECKS; do
  echo "--- $check" >&2
  "$check" || failed=$((failed + 1))
done
echo "$failed of $(wc -w <<<"$CHECKS") tool checks failed"
[[ $failed -eq 0 ]]
