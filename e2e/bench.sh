#!/usr/bin/env bash
# Side-by-side benchmark of Fjord and Apache Kafka on this machine (issue 6).
#
#   e2e/bench.sh [--quick] [--keep] [--profile] [--only SETUP,...]
#
# Starts one system at a time on loopback (Kafka and Fjord alternately, several rounds,
# per durability profile, then each as a three-broker cluster with replication factor
# 3, the partition scaling curve on three brokers, transactions on three brokers, then
# one broker of each over SSL and SASL_SSL), drives both with the same clients
# (fjord-bench, a librdkafka load generator on the rdkafka crate; librdkafka's own
# rdkafka_performance for the partition-count and read_committed rows; Kafka's
# ProducerPerformance / ConsumerPerformance from the kafka-tools jar; e2e/bench/
# txn_client.py on confluent-kafka for transactions of exactly 100 records; kcat for cold
# start), measures the machine's limits in the same run, prints one table of
# medians, writes target/bench/results.json, draws the charts (target/bench/*.png, copied
# to docs/bench/) and rewrites README's generated benchmark sections (BENCH_README=0: not).
# --profile also records Fjord with `perf record -g` under the 1 KB produce and consume
# workloads of the first round (target/bench/perf-*.txt). --only runs some of the setups:
# default, fsync (one broker without and with fsync per batch), rf3 (three brokers),
# security (one broker over SSL and SASL_SSL with SCRAM-SHA-512, certificates from
# e2e/tls/certs.sh), scaling (100 to 10,000 partitions on three brokers) and txn
# (transactional produce of 1 KB records, 100 a transaction, acks=all, RF 3, and
# read_committed consume of it, on three brokers); e.g. `--quick --only txn`. A step that
# fails leaves its own rows FAILED with its error.
#
# It installs what it needs (tools/deps.sh) and caches it under
# ${FJORD_CACHE:-~/.cache/fjord}: Debian's kcat, linux-perf, a JDK and Maven when missing,
# Kafka's jars, rdkafka_performance built once from rdkafka-sys' bundled librdkafka, and a
# venv with matplotlib and confluent-kafka (e2e/bench/requirements.txt).
#
# Environment: FJORD_BIN and FJORD_BENCH_BIN (default: release builds in $CARGO_TARGET_DIR
# or target/), BENCH_DIR (scratch dir for data, default target/bench/run), BENCH_ROUNDS
# (default 3 quick, 5 full), BENCH_SCALE (multiplies every record count), KAFKA_PORT /
# FJORD_PORT / FJORD_HTTP_PORT / FJORD_INTERNAL_PORT, KAFKA_CLUSTER_PORT /
# FJORD_CLUSTER_PORT (first port of each three-broker cluster), BENCH_SCALE_POINTS (the
# scaling curve's partition counts, default 100,1000,3000,10000), BENCH_FAIL_STEPS (steps
# made to fail, e.g. cold_start_s,rp1k_3p: checks that a failure stays in its rows),
# BENCH_CHARTS_DIR (default docs/bench). The security setup's SSL and SASL_SSL listeners
# are on KAFKA_PORT+2, +3 and FJORD_PORT+1, +2.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

# What the bench runs besides Fjord's binaries, installed and cached as the test command does
# (tools/deps.sh): kcat for cold start, perf for --profile, a JDK and Maven for Kafka's jars
# and Java tools, rdkafka_performance built once from the librdkafka source Cargo.lock pins,
# and a venv with matplotlib (the charts) and confluent-kafka (batched topic creation).
# shellcheck source=tools/deps.sh
source "$ROOT/tools/deps.sh"
deps_apt curl openssl python3-venv >&2
KCAT="$(deps_cmd kcat kcat)" || KCAT=kcat  # cold start then fails its rows
PERF="$(deps_cmd perf linux-perf)" || PERF=""
deps_cmd java default-jdk-headless > /dev/null
deps_cmd mvn maven > /dev/null
CP_FILE="$(deps_kafka_classpath)"
RDKAFKA_PERF="${RDKAFKA_PERF:-$(deps_rdkafka_performance)}" || RDKAFKA_PERF=""
PYTHON="$("$HERE/python/venv.sh" "$HERE/bench/requirements.txt" bench-venv)"
export KCAT PERF RDKAFKA_PERF

if [[ -z "${FJORD_BIN:-}" ]]; then
  echo "building fjord (release)..." >&2
  (cd "$ROOT" && cargo build --release -q -p fjord-broker --bin fjord)
  FJORD_BIN="$TARGET/release/fjord"
fi
[[ -x "$FJORD_BIN" ]] || { echo "bench.sh: no fjord binary at $FJORD_BIN" >&2; exit 1; }
if [[ -z "${FJORD_BENCH_BIN:-}" ]]; then
  echo "building fjord-bench (release)..." >&2
  (cd "$ROOT" && cargo build --release -q -p fjord-e2e --bin fjord-bench)
  FJORD_BENCH_BIN="$TARGET/release/fjord-bench"
fi
[[ -x "$FJORD_BENCH_BIN" ]] || { echo "bench.sh: no fjord-bench at $FJORD_BENCH_BIN" >&2; exit 1; }

exec "$PYTHON" "$HERE/bench/bench.py" --root "$ROOT" --fjord-bin "$FJORD_BIN" \
  --client-bin "$FJORD_BENCH_BIN" --classpath-file "$CP_FILE" "$@"
