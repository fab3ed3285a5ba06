#!/bin/sh
# registry:2's contract: listens on :5000, storage in /var/lib/docker-registry. With
# AXION_REGISTRY_TLS_NAMES (comma-separated DNS names), it serves TLS with a certificate from a CA made
# at first start; the CA's certificate, which clients trust, is /certs/ca.crt. Keys never leave
# the container.
set -e
if [ -n "$AXION_REGISTRY_TLS_NAMES" ]; then
  if [ ! -f /certs/tls.crt ]; then
    san="IP:127.0.0.1"
    for n in $(echo "$AXION_REGISTRY_TLS_NAMES" | tr ',' ' '); do san="$san,DNS:$n"; done
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -subj "/CN=AXion Hub throw-away registry CA" -keyout /certs/ca.key -out /certs/ca.crt 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=registry" \
      -keyout /certs/tls.key -out /certs/tls.csr 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > /certs/ext
    openssl x509 -req -in /certs/tls.csr -CA /certs/ca.crt -CAkey /certs/ca.key -CAcreateserial \
      -days 2 -extfile /certs/ext -out /certs/tls.crt 2>/dev/null
    rm -f /certs/ca.key /certs/tls.csr /certs/ext
  fi
  export REGISTRY_HTTP_TLS_CERTIFICATE=/certs/tls.crt REGISTRY_HTTP_TLS_KEY=/certs/tls.key
fi
exec docker-registry serve /etc/docker/registry/config.yml
