#!/usr/bin/env bash
# Kafka's own command-line tools (from the Apache Kafka jars, see `apache-kafka.sh tool`)
# against a broker, for the admin APIs they use: kafka-topics --describe
# (DescribeTopicPartitions, paged), kafka-configs --entity-type groups (group configs),
# kafka-leader-election (ElectLeaders). Each check is a `check_<tool>` function, as in
# the kafka-tools suite, so they fold into it.
#
#   e2e/kafka-tools-admin.sh BOOTSTRAP
#
# Each check creates its own topic or group (replication factor FJORD_REPLICATION_FACTOR,
# default 1), prints "ok <tool>: ..." per passed step and "FAIL <tool>: ..." per failed
# one, and returns non-zero on a failure. CHECKS in the environment picks a subset. Exits
# 1 if any check failed. Passes against Apache Kafka 4.4 as against Fjord.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 BOOTSTRAP" >&2; exit 2; }
bootstrap="$1"
rf="${FJORD_REPLICATION_FACTOR:-1}"

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

CHECKS="${CHECKS:-check_topics_describe check_configs_groups check_leader_election}"
failed=0
for check in $CHECKS; do
  echo "--- $check" >&2
  "$check" || failed=$((failed + 1))
done
echo "$failed of $(wc -w <<<"$CHECKS") tool checks failed"
[[ $failed -eq 0 ]]
