#!/usr/bin/env bash
# kcat (librdkafka) against a broker: for each codec, produce MESSAGES keyed messages with
# idempotence on, read them all back with kcat, and check every message arrived exactly
# once, in order per key, at dense offsets per partition.
#
#   e2e/kcat.sh BOOTSTRAP
#
# Installs kcat from Debian if missing. kcat cannot create topics, so each topic is created
# with the confluent-kafka admin client from the Python suites' venv (e2e/python/venv.sh);
# nothing relies on the broker creating topics by itself.
# Environment: MESSAGES (default 100000), KEYS (16), PARTITIONS (4), CODECS.
# FJORD_SSL_DIR: run over an SSL listener with the client certificate and CA that
# e2e/tls/certs.sh wrote there (client.pem, client.key, ca.pem).
# FJORD_SASL_MECHANISM (with FJORD_SASL_USER, FJORD_SASL_PASSWORD): authenticate with SASL,
# over SASL_SSL with FJORD_SSL_DIR's CA (and no client certificate), else SASL_PLAINTEXT.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[[ $# -eq 1 ]] || { echo "usage: $0 BOOTSTRAP" >&2; exit 2; }
bootstrap="$1"
MESSAGES="${MESSAGES:-100000}"
KEYS="${KEYS:-16}"
PARTITIONS="${PARTITIONS:-4}"
CODECS="${CODECS:-none gzip snappy lz4 zstd}"

if ! command -v kcat >/dev/null; then
  echo "installing kcat from Debian" >&2
  sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq kcat >&2
fi
python="$("$HERE/python/venv.sh")"
# The librdkafka settings of the listener, as key=value: kcat takes each with -X, the
# topic admin below as its config.
ssl_dir="${FJORD_SSL_DIR:-}"
mechanism="${FJORD_SASL_MECHANISM:-}"
conf=()
if [[ -n $mechanism ]]; then
  conf=("sasl.mechanisms=$mechanism" "sasl.username=${FJORD_SASL_USER:?}" "sasl.password=${FJORD_SASL_PASSWORD:?}")
  if [[ -n $ssl_dir ]]; then
    conf+=(security.protocol=sasl_ssl "ssl.ca.location=$ssl_dir/ca.pem")
  else
    conf+=(security.protocol=sasl_plaintext)
  fi
elif [[ -n $ssl_dir ]]; then
  conf=(security.protocol=ssl "ssl.ca.location=$ssl_dir/ca.pem"
        "ssl.certificate.location=$ssl_dir/client.pem" "ssl.key.location=$ssl_dir/client.key")
fi
tls=()
for kv in "${conf[@]}"; do tls+=(-X "$kv"); done
echo "kcat: $(kcat -V 2>&1 | grep -m1 Version)"

# topic_admin create|delete TOPIC
topic_admin() {
  "$python" - "$bootstrap" "$1" "$2" "$PARTITIONS" "${FJORD_REPLICATION_FACTOR:-1}" "${conf[@]}" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, op, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
replication_factor = int(sys.argv[5])
config = {"bootstrap.servers": bootstrap}
config.update(kv.split("=", 1) for kv in sys.argv[6:])
admin = AdminClient(config)
if op == "create":
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication_factor)])[topic].result(timeout=60)
else:
    admin.delete_topics([topic])[topic].result(timeout=60)
EOF
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=0

for codec in $CODECS; do
  topic="e2e-kcat-$codec-$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  start=$SECONDS
  topic_admin create "$topic"

  # kcat -L: the topic is in the metadata with all its partitions (waits up to 60 s for it).
  deadline=$((SECONDS + 60))
  until [[ "$(kcat -b "$bootstrap" "${tls[@]}" -L -t "$topic" 2>/dev/null | grep -c '^    partition ')" == "$PARTITIONS" ]]; do
    ((SECONDS < deadline)) || { echo "FAIL $codec: $topic not in metadata with $PARTITIONS partitions"; failed=1; continue 2; }
    sleep 0.2  # poll interval, not a synchronisation
  done

  # key k(i % KEYS), value i. kcat exits non-zero if any message is not delivered.
  if ! awk -v n="$MESSAGES" -v k="$KEYS" 'BEGIN { for (i = 0; i < n; i++) print "k" (i % k) "\t" i }' \
      | kcat -P -b "$bootstrap" "${tls[@]}" -t "$topic" -K $'\t' -z "$codec" \
          -X enable.idempotence=true -X linger.ms=5 2> "$work/produce.err"; then
    echo "FAIL $codec: kcat -P failed: $(tail -3 "$work/produce.err")"; failed=1; continue
  fi

  # -e: exit once every partition is read to its end.
  if ! timeout 120 kcat -C -b "$bootstrap" "${tls[@]}" -t "$topic" -o beginning -e -q \
      -f '%k %s %p %o\n' > "$work/read.txt" 2> "$work/consume.err"; then
    echo "FAIL $codec: kcat -C failed: $(tail -3 "$work/consume.err")"; failed=1; continue
  fi

  if summary="$(awk -v n="$MESSAGES" -v k="$KEYS" -f "$HERE/kcat-check.awk" "$work/read.txt")"; then
    echo "ok   $codec: $summary ($((SECONDS - start))s)"
    topic_admin delete "$topic"  # only on success: a failed run keeps its topic to look at
  else
    echo "FAIL $codec: $summary"
    failed=1
  fi
done

exit $failed
