#!/bin/sh
# Makes the certificates of tests/unit/test_svid.c: one per rule of the SPIFFE X509-SVID standard,
# each breaking (or exercising a MAY of) exactly one rule. Run once from this directory with the
# openssl command line; the outputs are committed. All keys here are test-only.
#
# root.pem      a root CA (CA:TRUE, keyUsage critical keyCertSign+cRLSign, spiffe://example.org)
# leaf-*.pem    leaves signed by root.key, each with its own key (leaf.key)
# ca-*.pem      signing certificates signed by root.key, all for the same key (signing.key), so
#               that the test can also try to issue leaves with each of them
set -eu
cd "$(dirname "$0")"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[ -f root.key ] || openssl ecparam -name prime256v1 -genkey -noout -out root.key
[ -f leaf.key ] || openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
[ -f signing.key ] || openssl ecparam -name prime256v1 -genkey -noout -out signing.key

cat > "$work/root.ext" <<'END'
[e]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://example.org
subjectKeyIdentifier = hash
END
openssl req -new -key root.key -subj "/O=fixture/CN=fixture root" -out "$work/root.csr"
openssl x509 -req -in "$work/root.csr" -key root.key -days 36500 -set_serial 1 \
    -extfile "$work/root.ext" -extensions e -out root.pem

serial=100
# make NAME KEY SUBJECT EXTENSION-LINES...
make() {
    name=$1 key=$2 subject=$3
    shift 3
    printf '[e]\n' > "$work/$name.ext"
    for line in "$@"; do
        printf '%s\n' "$line" >> "$work/$name.ext"
    done
    openssl req -new -key "$key" -subj "/O=request" -out "$work/$name.csr"
    serial=$((serial + 1))
    openssl x509 -req -in "$work/$name.csr" -CA root.pem -CAkey root.key -days 36500 \
        -set_serial "$serial" -subj "$subject" -extfile "$work/$name.ext" -extensions e \
        -out "$name.pem"
}

BC='basicConstraints = critical,CA:FALSE'
KU='keyUsage = critical,digitalSignature'
EKU='extendedKeyUsage = serverAuth,clientAuth'
ID='subjectAltName = URI:spiffe://example.org/workload'
leaf() {
    name=$1
    shift
    make "$name" leaf.key "/O=fixture" "$@"
}

leaf leaf-valid "$BC" "$KU" "$EKU" "$ID"
leaf leaf-dns "$BC" "$KU" "$EKU" "$ID,DNS:workload.example.org"
leaf leaf-two-uri "$BC" "$KU" "$EKU" "$ID,URI:spiffe://example.org/other"
leaf leaf-no-uri "$BC" "$KU" "$EKU" "subjectAltName = DNS:workload.example.org"
leaf leaf-http-uri "$BC" "$KU" "$EKU" "subjectAltName = URI:https://example.org/workload"
leaf leaf-root-id "$BC" "$KU" "$EKU" "subjectAltName = URI:spiffe://example.org"
leaf leaf-dot-dot "$BC" "$KU" "$EKU" "subjectAltName = URI:spiffe://example.org/a/../workload"
leaf leaf-percent "$BC" "$KU" "$EKU" "subjectAltName = URI:spiffe://example.org/a%2Fworkload"
leaf leaf-upper-domain "$BC" "$KU" "$EKU" "subjectAltName = URI:spiffe://Example.org/workload"
leaf leaf-ca-true "basicConstraints = critical,CA:TRUE" "$KU" "$EKU" "$ID"
leaf leaf-no-bc "$KU" "$EKU" "$ID"
leaf leaf-no-ku "$BC" "$EKU" "$ID"
leaf leaf-ku-not-critical "$BC" "keyUsage = digitalSignature" "$EKU" "$ID"
leaf leaf-key-enc "$BC" "keyUsage = critical,keyEncipherment" "$EKU" "$ID"
leaf leaf-ku-agreement "$BC" "keyUsage = critical,digitalSignature,keyEncipherment,keyAgreement" \
    "$EKU" "$ID"
leaf leaf-cert-sign "$BC" "keyUsage = critical,digitalSignature,keyCertSign" "$EKU" "$ID"
leaf leaf-crl-sign "$BC" "keyUsage = critical,digitalSignature,cRLSign" "$EKU" "$ID"
leaf leaf-eku-server "$BC" "$KU" "extendedKeyUsage = serverAuth" "$ID"
leaf leaf-eku-client "$BC" "$KU" "extendedKeyUsage = clientAuth" "$ID"
leaf leaf-no-eku "$BC" "$KU" "$ID"
leaf leaf-eku-critical "$BC" "$KU" "extendedKeyUsage = critical,serverAuth,clientAuth" "$ID"
leaf leaf-eku-any "$BC" "$KU" "extendedKeyUsage = serverAuth,anyExtendedKeyUsage" "$ID"
make leaf-no-subject leaf.key "/" "$BC" "$KU" "$EKU" "$ID"
make leaf-no-subject-critical leaf.key "/" "$BC" "$KU" "$EKU" \
    "subjectAltName = critical,URI:spiffe://example.org/workload"

CA='basicConstraints = critical,CA:TRUE'
SIGN='keyUsage = critical,keyCertSign,cRLSign'
DOMAIN='subjectAltName = URI:spiffe://example.org'
ca() {
    name=$1
    shift
    make "$name" signing.key "/O=fixture/CN=$name" "$@"
}

ca ca-valid "$CA" "$SIGN" "$DOMAIN"
ca ca-cert-sign-only "$CA" "keyUsage = critical,keyCertSign"
ca ca-path-length "basicConstraints = critical,CA:TRUE,pathlen:0" "$SIGN" "$DOMAIN"
ca ca-eku "$CA" "$SIGN" "extendedKeyUsage = serverAuth,clientAuth" "$DOMAIN"
ca ca-other-domain "$CA" "$SIGN" "subjectAltName = URI:spiffe://other.org"
ca ca-not-ca "basicConstraints = critical,CA:FALSE" "$SIGN" "$DOMAIN"
ca ca-no-bc "$SIGN" "$DOMAIN"
ca ca-no-cert-sign "$CA" "keyUsage = critical,cRLSign,digitalSignature" "$DOMAIN"
ca ca-no-ku "$CA" "$DOMAIN"
ca ca-ku-not-critical "$CA" "keyUsage = keyCertSign,cRLSign" "$DOMAIN"
ca ca-id-with-path "$CA" "$SIGN" "subjectAltName = URI:spiffe://example.org/workload"
ca ca-two-uri "$CA" "$SIGN" "$DOMAIN,URI:spiffe://other.org"
