#!/usr/bin/env bash
# Side-by-side benchmark of Fjord and Apache Kafka on this machine (issue 6).
#
#   e2e/bench.sh [--quick] [--keep] [--profile] [--only SETUP,...]
#
# Starts one system at a time on loopback (Kafka and Fjord alternately, several rounds,
# per durability profile, then each as a three-broker cluster with replication factor
# 3, then one broker of each over SSL and SASL_SSL), drives both with the same clients (fjord-bench, a librdkafka load generator on the
# rdkafka crate; Kafka's ProducerPerformance / ConsumerPerformance from the kafka-tools
# jar; kcat for cold start), measures the machine's limits in the same run, prints one
# table of medians and writes target/bench/results.json. --profile also records Fjord
# with `perf record -g` under the 1 KB produce and consume workloads of the first round
# (target/bench/perf-*.txt), installing Debian's linux-perf when perf is missing.
# --only runs some of the setups: default, fsync (one broker without and with fsync per
# batch), rf3 (three brokers) and security (one broker over SSL and SASL_SSL with
# SCRAM-SHA-512, certificates from e2e/tls/certs.sh); e.g. `--quick --only security`.
#
# Environment: FJORD_BIN and FJORD_BENCH_BIN (default: release builds in $CARGO_TARGET_DIR
# or target/), BENCH_DIR (scratch dir for data, default target/bench/run), BENCH_ROUNDS
# (default 3 quick, 5 full), BENCH_SCALE (multiplies every record count), KAFKA_PORT /
# FJORD_PORT / FJORD_HTTP_PORT / FJORD_INTERNAL_PORT, KAFKA_CLUSTER_PORT /
# FJORD_CLUSTER_PORT (first port of each three-broker cluster). The security setup's SSL
# and SASL_SSL listeners are on KAFKA_PORT+2, +3 and FJORD_PORT+1, +2.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

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

for arg in "$@"; do
  if [[ "$arg" == --profile ]] && ! command -v perf > /dev/null; then
    echo "installing linux-perf for --profile..." >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >&2
  fi
done

# The Java clients run from the classpath the Kafka launcher caches (it includes
# kafka-tools); resolve it the launcher's way when this machine has not started Kafka yet.
CP_FILE="${FJORD_CACHE:-$HOME/.cache/fjord}/apache-kafka-${KAFKA_VERSION:-4.4.0}.classpath"
if [[ ! -s "$CP_FILE" ]]; then
  mkdir -p "$(dirname "$CP_FILE")"
  mvn -q -B -Dstyle.color=never -f "$HERE/apache-kafka/pom.xml" dependency:build-classpath \
    -Dkafka.version="${KAFKA_VERSION:-4.4.0}" -Dmdep.outputFile="$CP_FILE" >&2
fi

exec python3 "$HERE/bench/bench.py" --root "$ROOT" --fjord-bin "$FJORD_BIN" \
  --client-bin "$FJORD_BENCH_BIN" --classpath-file "$CP_FILE" "$@"
