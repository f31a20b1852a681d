# shellcheck shell=bash
# --- Users: SCRAM credentials and ACLs on the secure cluster ----------------------------
# Sourced by e2e/k8s.sh after the listeners section, which applied the FjordCluster
# `secure` of e2e/k8s/examples-secure/ (a TLS + SCRAM-SHA-512 listener, authorization
# simple) in namespace $SECURE_NS and waited for it to be Ready. Uses k8s.sh's kubectl,
# kt and kt_within (Kafka's tools), wait_for, expect, log, fail and $WORK; the operator runs
# with --user-resync-seconds 5.
#
# A User `alice` (SCRAM, ACLs on topic alice-orders and group alice-group) produces and
# consumes with Kafka's console clients, configured from nothing but her Secret's
# client.properties; `bob` (no ACL on the topic) is refused with
# TOPIC_AUTHORIZATION_FAILED; an ACL removed behind the operator's back (kafka-acls as
# the operator's own principal, the one super user every secure cluster has) comes back
# by the next resync; deleting alice removes her ACLs, her credential (her client is
# refused) and her Secret.

UNS="${SECURE_NS:-secure}"
UC=secure
ujp() { kubectl get "$1" -n "$UNS" -o jsonpath="$2"; }
# secret_key SECRET KEY: the decoded value of one key of a Secret.
secret_key() { kubectl get secret "$1" -n "$UNS" -o "jsonpath={.data.${2//./\\.}}" | base64 -d; }

kubectl apply -n "$UNS" -f - >/dev/null <<EOF2
apiVersion: fjord.dev/v1alpha1
kind: Topic
metadata: {name: alice-orders}
spec: {clusterRef: $UC, partitions: 1, replicationFactor: 1}
---
apiVersion: fjord.dev/v1alpha1
kind: User
metadata: {name: alice}
spec:
  clusterRef: $UC
  authentication: {type: scram-sha-512}
  authorization:
    acls:
      - resource: {type: topic, name: alice-orders}
        operations: [Write, Read, Describe]
      - resource: {type: group, name: alice-group}
        operations: [Read]
---
apiVersion: fjord.dev/v1alpha1
kind: User
metadata: {name: bob}
spec:
  clusterRef: $UC
  authentication: {type: scram-sha-512}
  authorization:
    acls:
      - resource: {type: group, name: bob-group}
        operations: [Read]
EOF2
user_ready() { [[ "$(ujp "user/$1" '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
t0=$(now)
wait_for "User alice Ready" 120 user_ready alice
wait_for "User bob Ready" 60 user_ready bob
log "Users alice and bob Ready $(since "$t0")s after apply"
alice_topic_ready() { [[ "$(ujp topic/alice-orders '{.status.conditions[?(@.type=="Ready")].status}')" == True ]]; }
wait_for "Topic alice-orders Ready" 60 alice_topic_ready

expect "alice principal" "$(ujp user/alice '{.status.principal}')" "User:alice"
expect "alice secret" "$(ujp user/alice '{.status.secret}')" alice
expect "alice ACL count" "$(ujp user/alice '{.status.acls}')" 4
expect "alice Secret owner" "$(ujp secret/alice '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" User/alice
expect "alice Secret keys" "$(kubectl get secret alice -n "$UNS" -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')" \
  "bootstrap ca.crt client.properties password sasl.jaas.config "
ALICE_PW=$(secret_key alice password)
[[ ${#ALICE_PW} -ge 32 ]] || fail "alice's generated password is ${#ALICE_PW} characters"
expect "alice sasl.jaas.config" "$(secret_key alice sasl.jaas.config)" \
  "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"$ALICE_PW\";"
ABOOT=$(secret_key alice bootstrap)
[[ "$ABOOT" == "$UC-bootstrap.$UNS.svc:"* ]] || fail "alice's bootstrap is '$ABOOT'"
secret_key alice client.properties > "$WORK/alice.properties"
secret_key bob client.properties > "$WORK/bob.properties"
grep -q '^security.protocol=SASL_SSL$' "$WORK/alice.properties" || fail "alice's client.properties: $(grep -v jaas "$WORK/alice.properties")"

# Printer columns.
log "kubectl get users:"
kubectl get users -n "$UNS" | sed 's/^/k8s:   /'
expect "kubectl get users header" "$(kubectl get users -n "$UNS" | head -1 | awk '{print $1,$2,$3,$4,$5,$6}')" "NAME CLUSTER AUTHENTICATION ACLS READY AGE"
expect "kubectl get users bob" "$(kubectl get users -n "$UNS" --no-headers | awk '$1 == "bob" {print $2,$3,$4,$5}')" "$UC scram-sha-512 1 True"

# alice produces and consumes with her Secret's properties alone. The producer is
# kafka-verifiable-producer: it reports every send's outcome (and the exception of a
# failed one) as JSON on stdout, where the console producer only logs it.
produce_as() { # produce_as WHO N: N records with WHO's properties; events in $WORK/WHO-producer.out
  { cat "$WORK/$1.properties"; echo "acks=all"; echo "max.block.ms=20000"; } > "$WORK/$1-producer.properties"
  kt_within 120 kafka-verifiable-producer --bootstrap-server "$ABOOT" \
    --topic alice-orders --max-messages "$2" --command-config "$WORK/$1-producer.properties" \
    >"$WORK/$1-producer.out" 2>"$WORK/$1-producer.err" || true
}
sent() { grep -c producer_send_success "$WORK/$1-producer.out" || true; }
alice_produce() { # alice_produce N: N records, all acknowledged
  produce_as alice "$1"
  [[ "$(sent alice)" == "$1" ]]
}
producer_report() { cat "$WORK/$1-producer.out" "$WORK/$1-producer.err" >&2 || true; }
alice_consume() { # alice_consume N: the first N records of the topic, comma separated
  kt_within 120 kafka-console-consumer --bootstrap-server "$ABOOT" \
    --topic alice-orders --group alice-group --command-config "$WORK/alice.properties" \
    --from-beginning --max-messages "$1" --timeout-ms 60000 2>"$WORK/alice-consumer.err" | paste -sd,
}
alice_produce 3 || { producer_report alice; fail "alice's producer"; }
expect "records alice consumed in alice-group" "$(alice_consume 3)" "0,1,2"
log "alice produced and consumed with her Secret's client.properties"

# bob has no ACL on the topic.
produce_as bob 1
grep -qE 'TOPIC_AUTHORIZATION_FAILED|TopicAuthorizationException' "$WORK/bob-producer.out" ||
  { producer_report bob; fail "bob was not refused with TOPIC_AUTHORIZATION_FAILED"; }
log "bob refused: $(grep -oE 'TopicAuthorizationException|TOPIC_AUTHORIZATION_FAILED' "$WORK/bob-producer.out" | head -1)"

# Kafka's kafka-acls as the operator (its certificate, on the operator listener): the
# principal every secure cluster makes a super user.
OPBOOT="$UC-bootstrap.$UNS.svc:$(kubectl get fjordcluster "$UC" -n "$UNS" -o jsonpath='{.spec.ports.operator}')"
[[ "$OPBOOT" == *: ]] && OPBOOT="${OPBOOT}9091"
pem_prop() { awk 'BEGIN { ORS = "\\n" } { print }'; }
{
  echo "security.protocol=SSL"
  echo "ssl.keystore.type=PEM"
  echo "ssl.keystore.certificate.chain=$(kubectl get secret "$UC-operator-cert" -n "$UNS" -o 'jsonpath={.data.tls\.crt}' | base64 -d | pem_prop)"
  echo "ssl.keystore.key=$(kubectl get secret "$UC-operator-cert" -n "$UNS" -o 'jsonpath={.data.tls\.key}' | base64 -d | pem_prop)"
  echo "ssl.truststore.type=PEM"
  echo "ssl.truststore.certificates=$(kubectl get secret "$UC-cluster-ca-cert" -n "$UNS" -o 'jsonpath={.data.ca\.crt}' | base64 -d | pem_prop)"
} > "$WORK/operator-client.properties"
kacls() { kt_within 120 kafka-acls --bootstrap-server "$OPBOOT" --command-config "$WORK/operator-client.properties" "$@"; }
alice_acls() { kacls --list --principal User:alice 2>/dev/null; }
expect "alice's ACLs on the brokers" "$(alice_acls | grep -c 'principal=User:alice')" 4
kacls --remove --force --allow-principal User:alice --operation Write --topic alice-orders >/dev/null 2>"$WORK/kafka-acls.err" ||
  { cat "$WORK/kafka-acls.err" >&2; fail "kafka-acls --remove"; }
t0=$(now)
write_back() { alice_acls | grep -q 'principal=User:alice, host=\*, operation=WRITE, permissionType=ALLOW'; }
wait_for "alice's Write ACL back after its removal by kafka-acls" 60 write_back
log "figure: removed ACL set back $(since "$t0")s after kafka-acls --remove (resync every 5 s)"
# The password was generated once: the resyncs since kept it.
expect "alice's password after resyncs" "$(secret_key alice password)" "$ALICE_PW"
alice_produce 1 || { producer_report alice; fail "alice produces after her ACL came back"; }

# Deleting alice: ACLs, credential and Secret go; her client is refused.
kubectl delete user alice -n "$UNS" --wait=true --timeout 60s >/dev/null
secret_gone() { ! kubectl get secret alice -n "$UNS" >/dev/null 2>&1; }
wait_for "alice's Secret deleted" 30 secret_gone
expect "alice's ACLs after deletion" "$(alice_acls | grep -c 'principal=User:alice')" 0
if alice_produce 1; then fail "alice produced after her User was deleted"; fi
grep -qE 'SaslAuthenticationException|Authentication failed' "$WORK/alice-producer.out" "$WORK/alice-producer.err" ||
  { producer_report alice; fail "alice's client was not refused at authentication"; }
expect "bob still Ready" "$(ujp user/bob '{.status.conditions[?(@.type=="Ready")].status}')" True
log "Users: alice's access removed with her User; bob kept his"
