#!/bin/sh
# Regenerates the test PKI for ike/tests (OpenSSL 3): an ECDSA P-256 chain and an RSA-2048
# chain (CA, ha.example.org, mn@example.org), plus a foreign CA. Valid 2026-2126; the tests
# pass their own "now". Keys are PKCS#8 (what ring reads); ecdsa-{mn,ha}-sec1.key hold the
# same keys as SEC1 "EC PRIVATE KEY" files (tests/sec1_keys.rs).
set -eu
cd "$(dirname "$0")"
ca() { # name keyopts...
  n=$1; shift
  openssl genpkey "$@" -out "$n-ca.key" 2>/dev/null
  openssl req -x509 -new -key "$n-ca.key" -out "$n-ca.pem" -days 36500 -subj "/CN=dsmip test $n CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
ee() { # chain name san keyopts...
  c=$1 n=$2 san=$3; shift 3
  openssl genpkey "$@" -out "$c-$n.key" 2>/dev/null
  openssl req -new -key "$c-$n.key" -out tmp.csr -subj "/CN=$n"
  printf 'subjectAltName=%s\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n' "$san" > tmp.ext
  openssl x509 -req -in tmp.csr -CA "$c-ca.pem" -CAkey "$c-ca.key" -CAcreateserial -out "$c-$n.pem" -days 36500 -extfile tmp.ext 2>/dev/null
  rm -f tmp.csr tmp.ext
}
EC="-algorithm EC -pkeyopt ec_paramgen_curve:P-256"
RSA="-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
ca ecdsa $EC; ee ecdsa ha "DNS:ha.example.org" $EC; ee ecdsa mn "email:mn@example.org" $EC
ca rsa $RSA; ee rsa ha "DNS:ha.example.org" $RSA; ee rsa mn "email:mn@example.org" $RSA
ca foreign $EC; ee foreign mn "email:mn@example.org" $EC
for n in mn ha; do openssl ec -in "ecdsa-$n.key" -out "ecdsa-$n-sec1.key" 2>/dev/null; done
rm -f ./*.srl
