#!/bin/sh
# bench/tls_certs.sh DIR -- a throwaway CA and a server certificate for
# 127.0.0.1 (subjectAltName IP, so sslmode=verify-full works), for the TLS
# rows of `make bench`.  Writes ca.crt, server.crt and server.key (0600).
set -eu
dir=$1
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
# shellcheck disable=SC2086 # $ec is a list of options
openssl req -x509 -new $ec -keyout ca.key -out ca.crt -days 2 \
	-subj "/CN=netbuf bench CA" 2>/dev/null
# shellcheck disable=SC2086
openssl req -new $ec -keyout server.key -out server.csr -subj "/CN=127.0.0.1" 2>/dev/null
printf 'basicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1\n' >server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 2 \
	-extfile server.ext -out server.crt 2>/dev/null
chmod 600 server.key ca.key
rm -f server.csr server.ext
