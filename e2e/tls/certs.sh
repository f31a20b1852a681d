#!/usr/bin/env bash
# Writes a test CA and certificates into DIR for the TLS client suites:
#
#   e2e/tls/certs.sh DIR
#
#   ca.pem                      the CA (truststore of broker and clients)
#   broker.pem, broker.key      the broker's certificate (localhost, 127.0.0.1) and key
#   client.pem, client.key      a client certificate, subject CN=client,OU=e2e,O=Fjord
#   stranger.pem, stranger.key  a client certificate from another CA (must be refused)
#   expired.pem, expired.key    a client certificate from the test CA that expired in 2020
#                               (must be refused)
#   client-keystore.pem, stranger-keystore.pem, expired-keystore.pem
#                               key and certificate in one file, for the Java client's
#                               ssl.keystore.type=PEM
#
# Keys are unencrypted PKCS#8 PEM, as Kafka's ssl.keystore.type=PEM reads them.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 DIR" >&2; exit 2; }
command -v openssl >/dev/null || { echo "certs.sh: openssl is required" >&2; exit 2; }
dir="$1"
mkdir -p "$dir"
cd "$dir"

ca() { # ca NAME
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$1-ca.key" -out "$1-ca.pem" 2>/dev/null
}

leaf() { # leaf CA NAME SUBJECT [SAN]
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$2.key" -out "$2.csr" 2>/dev/null
  local ext="$2.ext"
  echo "basicConstraints=CA:FALSE" > "$ext"
  [[ -n ${4:-} ]] && echo "subjectAltName=$4" >> "$ext"
  openssl x509 -req -in "$2.csr" -CA "$1-ca.pem" -CAkey "$1-ca.key" -CAcreateserial \
    -days 2 -extfile "$ext" -out "$2.pem" 2>/dev/null
  rm -f "$2.csr" "$ext"
}

# expired CA NAME SUBJECT: a certificate valid only on 1 January 2020. `openssl x509 -req`
# can only start a certificate now, so this one is signed with `openssl ca`, which takes
# both dates.
expired() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$3" \
    -keyout "$2.key" -out "$2.csr" 2>/dev/null
  local db; db="$(mktemp -d)"
  : > "$db/index.txt"
  printf '[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\nnew_certs_dir=%s\nserial=%s/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n' \
    "$db" "$db" "$db" > "$db/ca.cnf"
  echo 01 > "$db/serial"
  openssl ca -batch -notext -config "$db/ca.cnf" -cert "$1-ca.pem" -keyfile "$1-ca.key" \
    -in "$2.csr" -startdate 20200101000000Z -enddate 20200102000000Z -out "$2.pem" 2>/dev/null
  rm -rf "$db" "$2.csr"
}

ca test
ca other
leaf test broker "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf test client "/O=Fjord/OU=e2e/CN=client"
leaf other stranger "/CN=stranger"
expired test expired "/CN=expired"
cp test-ca.pem ca.pem
for who in client stranger expired; do cat "$who.key" "$who.pem" > "$who-keystore.pem"; done
echo "$dir"
