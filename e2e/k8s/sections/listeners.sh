# shellcheck shell=bash
# --- Listeners: the secure cluster ------------------------------------------------------
# Sourced by e2e/k8s.sh after the demo cluster's sections. Uses k8s.sh's kubectl, kt, kt_within
# (Kafka's tools), wait_for, expect, log, fail, now, since and $WORK, $HERE.
#
# The FjordCluster `secure` of e2e/k8s/examples-secure/ (listeners `tls`: SASL_SSL with
# SCRAM-SHA-512, `mtls`: SSL with client certificates; authorization simple, super user
# admin) in namespace $SECURE_NS becomes Ready: the operator reaches its brokers on the
# operator listener with its own certificate (mutual TLS). Its Services publish each
# listener port by name. A Topic resource on it becomes Ready (the Topic controller goes
# through the operator listener too). The SCRAM credential of `admin` is created with
# Kafka's kafka-configs on the mtls listener, as the operator (its certificate from
# Secret secure-operator-cert, a super user on every secure cluster): this section does
# not depend on the User resource. Kafka's console producer and consumer then produce
# and consume over the SCRAM listener with the cluster CA of secure-cluster-ca-cert; a
# wrong password is refused there, and a client without a certificate is refused on the
# mtls listener.

SECURE_NS="${SECURE_NS:-secure}"
SC=secure
sjp() { kubectl get "$1" -n "$SECURE_NS" -o jsonpath="$2"; }
# secure_secret SECRET KEY: one key of a Secret, decoded.
secure_secret() { kubectl get secret "$1" -n "$SECURE_NS" -o "jsonpath={.data.${2//./\\.}}" | base64 -d; }

kubectl create namespace "$SECURE_NS" >/dev/null
t0=$(now)
kubectl apply -n "$SECURE_NS" -f "$HERE/k8s/examples-secure/" >/dev/null
secure_ready() { [[ "$(sjp fjordcluster/$SC '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "FjordCluster secure Ready (3 brokers, TLS listeners)" 300 secure_ready
log "secure cluster Ready $(since "$t0")s after apply"

# Ports by name: the container, the headless Service (every port) and the bootstrap
# Service (the client listeners and the operator's).
expect "broker container ports" "$(sjp statefulset/$SC '{range .spec.template.spec.containers[0].ports[*]}{.name}={.containerPort} {end}')" \
  "tls=9094 mtls=9095 operator=9091 internal=9093 http=9644 "
expect "headless Service ports" "$(sjp service/$SC-brokers '{range .spec.ports[*]}{.name}={.port}/{.targetPort} {end}')" \
  "tls=9094/tls mtls=9095/mtls operator=9091/operator internal=9093/internal http=9644/http "
expect "bootstrap Service ports" "$(sjp service/$SC-bootstrap '{range .spec.ports[*]}{.name}={.port} {end}')" \
  "tls=9094 mtls=9095 operator=9091 "
expect "secure status.bootstrap" "$(sjp fjordcluster/$SC '{.status.bootstrap}')" "$SC-bootstrap.$SECURE_NS.svc:9094"
secure_args=$(sjp statefulset/$SC '{.spec.template.spec.containers[0].args}')
for want in \
  "--listener-security-protocol-map=TLS:SASL_SSL,MTLS:SSL,OPERATOR:SSL" \
  "--listener-ssl-client-auth=MTLS:required,OPERATOR:required" \
  "--sasl-enabled-mechanisms=SCRAM-SHA-512" \
  "--authorizer=standard" \
  "--super-users=User:fjord:operator;User:admin"; do
  [[ "$secure_args" == *"\"$want\""* ]] || fail "secure broker args lack $want: $secure_args"
done

# A Topic on the secure cluster: the operator creates it through its own listener.
kubectl apply -n "$SECURE_NS" -f - >/dev/null <<EOF2
apiVersion: fjord.dev/v1alpha1
kind: Topic
metadata: {name: secure-orders}
spec: {clusterRef: $SC, partitions: 3, replicationFactor: 3}
EOF2
secure_topic_ready() { [[ "$(sjp topic/secure-orders '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "Topic secure-orders Ready on the secure cluster" 60 secure_topic_ready

# Client properties: PEM inline, as Kafka's Java clients take them (KIP-651).
pem_inline() { awk 'BEGIN { ORS = "\\n" } { print }'; }
secure_secret "$SC-cluster-ca-cert" ca.crt > "$WORK/secure-ca.crt"
grep -q "BEGIN CERTIFICATE" "$WORK/secure-ca.crt" || fail "Secret $SC-cluster-ca-cert has no ca.crt"
{
  echo "security.protocol=SSL"
  echo "ssl.truststore.type=PEM"
  echo "ssl.truststore.location=$WORK/secure-ca.crt"
  echo "ssl.keystore.type=PEM"
  echo "ssl.keystore.certificate.chain=$(secure_secret "$SC-operator-cert" tls.crt | pem_inline)"
  echo "ssl.keystore.key=$(secure_secret "$SC-operator-cert" tls.key | pem_inline)"
} > "$WORK/secure-operator.properties"
scram_props() { # scram_props USER PASSWORD
  printf '%s\n' "security.protocol=SASL_SSL" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$1\" password=\"$2\";" \
    "ssl.truststore.type=PEM" "ssl.truststore.location=$WORK/secure-ca.crt"
}
ADMIN_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
scram_props admin "$ADMIN_PASSWORD" > "$WORK/secure-admin.properties"
scram_props admin "not-$ADMIN_PASSWORD" > "$WORK/secure-wrong.properties"
SECURE_OP="$SC-bootstrap.$SECURE_NS.svc:9091"
SECURE_TLS="$SC-bootstrap.$SECURE_NS.svc:9094"
SECURE_MTLS="$SC-bootstrap.$SECURE_NS.svc:9095"

# On the mtls listener, which the NetworkPolicy opens to clients (the operator port is
# the operator's alone): the operator's certificate is of the cluster CA, which the
# brokers' truststore holds next to the clients CA.
kt_within 120 kafka-configs --bootstrap-server "$SECURE_MTLS" \
  --command-config "$WORK/secure-operator.properties" --alter --entity-type users --entity-name admin \
  --add-config "SCRAM-SHA-512=[iterations=4096,password=$ADMIN_PASSWORD]" >/dev/null 2>"$WORK/secure-configs.err" ||
  { grep -v SLF4J "$WORK/secure-configs.err" >&2 || true; fail "kafka-configs over the operator listener"; }
log "SCRAM-SHA-512 credential of admin set as the operator, with its certificate"

# Produce and consume over SASL_SSL with SCRAM-SHA-512.
seq 1 200 | kt_within 120 kafka-console-producer --bootstrap-server "$SECURE_TLS" \
  --topic secure-orders --command-config "$WORK/secure-admin.properties" >/dev/null 2>"$WORK/secure-producer.err" ||
  { grep -v SLF4J "$WORK/secure-producer.err" >&2 || true; fail "console producer over the SCRAM listener"; }
got=$(kt_within 120 kafka-console-consumer --bootstrap-server "$SECURE_TLS" \
  --topic secure-orders --from-beginning --max-messages 200 --timeout-ms 60000 \
  --command-config "$WORK/secure-admin.properties" 2>"$WORK/secure-consumer.err" | sort -n | uniq | tr '\n' ' ')
expect "records consumed over SASL_SSL" "$got" "$(seq 1 200 | tr '\n' ' ')"
log "console producer and consumer: 200 records over SASL_SSL/SCRAM-SHA-512 with the cluster CA"

# Refused: a wrong password on the SCRAM listener, no client certificate on mtls.
if kt_within 120 kafka-topics --bootstrap-server "$SECURE_TLS" \
  --command-config "$WORK/secure-wrong.properties" --list >"$WORK/secure-wrong.out" 2>&1; then
  fail "a wrong password was accepted on the SCRAM listener: $(cat "$WORK/secure-wrong.out")"
fi
grep -qi "authentication failed" "$WORK/secure-wrong.out" ||
  { grep -v SLF4J "$WORK/secure-wrong.out" >&2 || true; fail "wrong password: no authentication failure"; }
printf '%s\n' "security.protocol=SSL" "ssl.truststore.type=PEM" "ssl.truststore.location=$WORK/secure-ca.crt" \
  > "$WORK/secure-nocert.properties"
if kt_within 120 kafka-topics --bootstrap-server "$SECURE_MTLS" \
  --command-config "$WORK/secure-nocert.properties" --list >"$WORK/secure-nocert.out" 2>&1; then
  fail "a client without a certificate was accepted on the mtls listener: $(cat "$WORK/secure-nocert.out")"
fi
grep -qiE "ssl|handshake" "$WORK/secure-nocert.out" ||
  { grep -v SLF4J "$WORK/secure-nocert.out" >&2 || true; fail "no certificate: no TLS failure"; }
# The operator's certificate on the operator listener (the operator's own path).
listed=$(kt_within 120 kafka-topics --bootstrap-server "$SECURE_OP" \
  --command-config "$WORK/secure-operator.properties" --list 2>/dev/null)
grep -qx secure-orders <<<"$listed" || fail "kafka-topics on the operator listener with its certificate: $listed"
log "refused: a wrong password (SCRAM listener), no client certificate (mtls listener)"
