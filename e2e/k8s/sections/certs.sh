# shellcheck shell=bash
# certs: sourced by e2e/k8s.sh while FjordCluster demo runs 3 Ready brokers.
#
# The brokers' internal plane runs mutual TLS on certificates from the cluster CA the
# operator made. Under an acks=all producer: a short validity (60s, renewed 40s ahead)
# gets the broker certificates renewed (their not-after moves, and brokers serve the new
# ones without a restart); a CA renewal asked for by annotation keeps brokers verifiable
# by a client trusting only the old CA and by one trusting only the new CA; the validity
# is put back. Nothing acknowledged is lost and no broker pod is replaced.

certs_dir="$WORK/certs"
mkdir -p "$certs_dir"
# secret_key SECRET KEY: a Secret's value, decoded.
secret_key() {
  kubectl get secret "$1" -n "$NS" -o json |
    python3 -c 'import base64, json, sys; sys.stdout.write(base64.b64decode(json.load(sys.stdin)["data"][sys.argv[1]]).decode())' "$2"
}
enddate() { openssl x509 -noout -enddate | cut -d= -f2; }
epoch() { date -d "$1" +%s; }
# probe_internal CAFILE: a TLS handshake with broker 0's internal listener, presenting
# broker 1's certificate (the listener requires one from the cluster CA), verifying the
# server's chain and name against CAFILE alone. Prints the server's certificate.
probe_internal() {
  secret_key demo-broker-certs demo-1.crt > "$certs_dir/client.crt"
  secret_key demo-broker-certs demo-1.key > "$certs_dir/client.key"
  local host=demo-0.demo-brokers.$NS.svc
  openssl s_client -connect "$(pod_address demo-0):9093" -servername "$host" -verify_hostname "$host" \
    -CAfile "$1" -no-CApath -no-CAstore -verify_return_error \
    -cert "$certs_dir/client.crt" -key "$certs_dir/client.key" </dev/null 2>"$certs_dir/probe.err" |
    openssl x509
}

# The operator made the CAs and every broker's certificate; the brokers run on them.
expect "cluster CA generation" "$(jp secret/demo-cluster-ca '{.metadata.annotations.fjord\.dev/ca-generation}')" 1
expect "broker certificate keys" "$(kubectl get secret demo-broker-certs -n "$NS" -o json | python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin)["data"])))')" \
  "demo-0.crt demo-0.key demo-1.crt demo-1.key demo-2.crt demo-2.key truststore.crt"
expect "broker certificate owner" "$(jp secret/demo-broker-certs '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')" FjordCluster/demo
secret_key demo-cluster-ca ca.crt > "$certs_dir/ca-1.pem"
probe_internal "$certs_dir/ca-1.pem" > "$certs_dir/served.pem" || fail "internal listener: $(cat "$certs_dir/probe.err")"
expect "broker 0 serves the certificate of its Secret" "$(enddate < "$certs_dir/served.pem")" \
  "$(secret_key demo-broker-certs demo-0.crt | enddate)"
openssl x509 -noout -ext subjectAltName < "$certs_dir/served.pem" | grep -q "URI:fjord://node/0" ||
  fail "broker 0's internal certificate does not name node 0"
# Without a client certificate the internal listener refuses the connection (in TLS
# 1.3 the refusal arrives as an alert after the handshake, so read once).
no_client_cert() {
  python3 - "demo-0.demo-brokers.$NS.svc" "$certs_dir/ca-1.pem" "$(pod_address demo-0)" <<'PY'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
try:
    s = ctx.wrap_socket(socket.create_connection((sys.argv[3], 9093), timeout=10),
                        server_hostname=sys.argv[1])
    data = s.recv(1)
except ssl.SSLError as e:
    print("refused:", e)
    sys.exit(0)
except ConnectionError as e:
    print("refused:", e)
    sys.exit(0)
except socket.timeout:
    sys.exit("accepted: the connection stayed open")
sys.exit(0 if data == b"" else "accepted")
PY
}
wait_for "internal listener refusing a client without certificate" 20 no_client_cert
log "internal plane: mutual TLS with certificates of $(openssl x509 -noout -subject < "$certs_dir/ca-1.pem")"

certs_uids="$(jp pod/demo-0 '{.metadata.uid}') $(jp pod/demo-1 '{.metadata.uid}') $(jp pod/demo-2 '{.metadata.uid}')"
kubectl apply -n "$NS" -f - >/dev/null <<<'{"apiVersion":"fjord.dev/v1alpha1","kind":"Topic","metadata":{"name":"certs"},"spec":{"clusterRef":"demo","partitions":3,"replicationFactor":3,"config":{"min.insync.replicas":"2"}}}'
wait_for "Topic certs Ready" 60 topic_ready certs
client_start certs-producer "$WORK/certs-producer.out" "$WORK/logs/certs-producer.log" \
  kafka-tool kafka-verifiable-producer --bootstrap-server "$BOOT" --topic certs \
  --acks -1 --throughput 100 --max-messages 30000
certs_acked() { grep -c producer_send_success "$WORK/certs-producer.out" || true; }
certs_acked_at_least() { (( $(certs_acked) >= $1 )); }
wait_for "certs producer acknowledging" 120 certs_acked_at_least 100
t0=$(now)

# A short validity: the leaves are issued again at once, then renewed 40s ahead of
# their end, every ~20s.
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"certificates":{"validity":"60s","renewBefore":"40s"}}}' >/dev/null
b0_end() { epoch "$(secret_key demo-broker-certs demo-0.crt | enddate)"; }
short_lived() { (( $(b0_end) <= $(date +%s) + 60 )); }
wait_for "broker certificates issued again for 60s" 60 short_lived
first_end=$(b0_end)
moved() { (( $(b0_end) > first_end )); }
wait_for "broker certificates renewed (not-after moved)" 60 moved
serves_secret() {
  [[ "$(probe_internal "$certs_dir/ca-1.pem" | enddate)" == "$(secret_key demo-broker-certs demo-0.crt | enddate)" ]]
}
wait_for "broker 0 serving its renewed certificate" 30 serves_secret
[[ -n "$(kubectl get events -n "$NS" --field-selector reason=CertificatesRenewed -o name)" ]] || fail "no CertificatesRenewed Event"
internal_reload_logged() { pod_log "$NS" demo-0 | grep -q "internal TLS files changed: reloaded"; }
wait_for "broker 0 logging the reload of its internal TLS files" 30 internal_reload_logged
log "leaf renewal: not-after $(date -d @"$first_end" -u +%T) -> $(date -d @"$(b0_end)" -u +%T), $(since "$t0")s after the validity change"

# A CA renewal asked for by annotation: the new CA is signed by the old one, bundles hold
# both, and chains carry the cross-signed CA, so either trust works.
kubectl annotate fjordcluster demo -n "$NS" fjord.dev/renew-ca=true >/dev/null
ca_generation_2() {
  [[ "$(jp secret/demo-cluster-ca '{.metadata.annotations.fjord\.dev/ca-generation}')" == 2 &&
     -z "$(jp fjordcluster/demo '{.metadata.annotations.fjord\.dev/renew-ca}')" ]]
}
wait_for "cluster CA generation 2, annotation removed" 60 ca_generation_2
secret_key demo-cluster-ca ca.crt > "$certs_dir/ca-2.pem"
expect "new CA name" "$(openssl x509 -noout -subject -nameopt RFC2253 < "$certs_dir/ca-2.pem")" "subject=CN=fjord-cluster-ca demo 2"
expect "CAs in the trust bundle" "$(secret_key demo-cluster-ca-cert ca.crt | grep -c 'BEGIN CERTIFICATE')" 2
expect "status cluster CA generation" "$(jp fjordcluster/demo '{.status.certificates.clusterCa.generation}')" 2
[[ -n "$(kubectl get events -n "$NS" --field-selector reason=CaRenewed -o name)" ]] || fail "no CaRenewed Event"
wait_for "broker 0 verified by a client trusting only the new CA" 60 probe_internal "$certs_dir/ca-2.pem"
probe_internal "$certs_dir/ca-1.pem" >/dev/null || fail "a client trusting only the old CA: $(cat "$certs_dir/probe.err")"
# Records keep being acknowledged once brokers serve chains from the new CA.
acked_after_ca=$(certs_acked)
wait_for "producer acknowledging after the CA renewal" 60 certs_acked_at_least $(( acked_after_ca + 100 ))
log "CA renewal: broker 0 verified with only the old CA and with only the new CA"

# The validity back to the default: the leaves are issued again for a year.
kubectl patch fjordcluster demo -n "$NS" --type merge -p '{"spec":{"certificates":null}}' >/dev/null
long_lived() { (( $(b0_end) > $(date +%s) + 86400 )); }
wait_for "broker certificates back to the default validity" 60 long_lived
client_term certs-producer 2>/dev/null || true
python3 -c '
import json, sys
for line in sys.stdin:
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("name") == "producer_send_success":
        print(event["value"])' < "$WORK/certs-producer.out" | sort -u > "$WORK/certs-acked"
acked=$(wc -l < "$WORK/certs-acked")
{ kt kafka-console-consumer --bootstrap-server "$BOOT" --topic certs --from-beginning \
  --timeout-ms 20000 2>/dev/null || true; } | sort -u > "$WORK/certs-read"
lost=$(comm -23 "$WORK/certs-acked" "$WORK/certs-read" | wc -l)
log "certificate renewals under acks=all: acked=$acked lost=$lost failed_sends=$(grep -c producer_send_error "$WORK/certs-producer.out" || true)"
expect "acknowledged records lost across certificate renewals" "$lost" 0
expect "broker pods (none restarted)" "$(jp pod/demo-0 '{.metadata.uid}') $(jp pod/demo-1 '{.metadata.uid}') $(jp pod/demo-2 '{.metadata.uid}')" "$certs_uids"
wait_for "FjordCluster demo Ready after the renewals" 60 cluster_ready
kubectl delete topic certs -n "$NS" --wait=true --timeout 60s >/dev/null
log "certs: $(since "$t0")s"
