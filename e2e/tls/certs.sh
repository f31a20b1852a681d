#!/usr/bin/env bash
# Writes a test CA and certificates into DIR for the TLS client suites:
#
#   e2e/tls/certs.sh DIR
#
#   ca.pem                      the CA (truststore of broker and clients)
#   broker.pem, broker.key      the broker's certificate (localhost, 127.0.0.1) and key
#   client.pem, client.key      a client certificate, subject CN=client,OU=e2e,O=Fjord
#   stranger.pem, stranger.key  a client certificate from another CA (must be refused)
#   client-keystore.pem, stranger-keystore.pem
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

ca test
ca other
leaf test broker "/CN=localhost" "DNS:localhost,IP:127.0.0.1"
leaf test client "/O=Fjord/OU=e2e/CN=client"
leaf other stranger "/CN=stranger"
cp test-ca.pem ca.pem
cat client.key client.pem > client-keystore.pem
cat stranger.key stranger.pem > stranger-keystore.pem
echo "$dir"
