#!/usr/bin/env bash
# Builds the wolfSSL that libmeshtls links in: the release pinned in source.pin (its version, the
# SHA-256 of its tarball and its signer), fetched from Debian's archive and checked before use,
# configured as a static PIC library with exactly the features libmeshtls uses, and with x86-64
# acceleration (AES-NI, AVX2, SP math in assembly) on x86_64 — Debian's binary package has none,
# which makes its bulk crypto ~30x slower.
#
# The tarball is found with apt itself, with a private list and state directory
# (packaging/debian-source.sh): the machine's own Debian archives, with the newer suites source.pin
# names. No host name is written here and the system's apt state is not touched.
#
# Usage: build.sh CACHE_DIR
#   Installs into CACHE_DIR/wolfssl-<version>-<hash of the configuration>/ and prints that
#   directory as the last line of stdout (progress goes to stderr, the full log to a file in the
#   cache). A later run finds the finished install and returns at once, without the network.
#   Any change to this folder (the pin, the key, this script) is a new cache entry.
#
# Needs: apt, gpgv, autoconf, automake, libtool, a C toolchain and make
# (packaging/install-deps.sh).
set -euo pipefail

script=wolfssl/build.sh
script_dir=$(cd "$(dirname "$0")" && pwd)
# die, say, run and the apt source fetch
source "$script_dir/../debian-source.sh"

[ $# -eq 1 ] || die "usage: build.sh CACHE_DIR"
mkdir -p "$1" || die "cannot create cache directory $1"
cache=$(cd "$1" && pwd)

for tool in make; do
  command -v "$tool" >/dev/null || die "$tool not found (run packaging/install-deps.sh)"
done
compiler=${CC:-cc}
command -v "${compiler%% *}" >/dev/null || die "C compiler '$compiler' not found"

# ---- the configuration --------------------------------------------------------------------------
# Exactly what libmeshtls uses: TLS 1.3 only, mutual auth with ECDSA P-256 certificates, key
# shares X25519MLKEM768 (the post-quantum hybrid mesh peers agree on: ML-KEM-768 with X25519),
# SecP256r1MLKEM768, X25519 and P-256 (classical peers), ALPN + SNI (mesh marking), certificate and CSR generation (the agent's CA and
# the workload's CSR). Only native APIs: the verify callback reads the peer's DER from
# store->certs.
# No OpenSSL-compatibility layer: --enable-opensslextra forces KEEP_PEER_CERT, which keeps a
# decoded copy of the peer's certificate in every WOLFSSL (3.6 KB inside the struct, 1.9 KB more
# allocated), and keeps the cipher suites after the handshake; libmeshtls only needs the peer's
# SPIFFE ID, which the verify callback copies. Session tickets: TLS 1.3 resumption (PSK with a
# fresh ECDHE share), with libmeshtls's own ticket callback (tls/claim.c says what a ticket binds).
# Session export (wolfSSL_tls_export/wolfSSL_tls_import): a live connection's record state is
# handed to another process (exec of a handler, the next child of a privilege-separated server).
# wolfSSL's heap per idle connection: 10.1 KB with the compatibility layer and the GHASH table
# below, 2.3 KB without (measured with tests/bench/heap_sites.py).
configure_flags=(
  --enable-static --disable-shared --with-pic
  --enable-tls13 --disable-oldtls --disable-tlsv12
  --enable-ecc --enable-curve25519 --disable-rsa --disable-dh
  --enable-certgen --enable-certreq --enable-certext --enable-keygen
  --enable-alpn --enable-sni --enable-session-ticket --enable-supportedcurves
  --disable-opensslextra
  --enable-chacha --enable-poly1305 --enable-sha384 --enable-sha512
  --disable-examples --disable-crypttests --disable-benchmark --disable-jobserver
  --enable-sessionexport
  --enable-mlkem --enable-pqc-hybrids
  --enable-cryptocb
)
case "$(uname -m)" in
  x86_64 | amd64)
    # aesgcm=small: no GHASH table in each Aes context. With AES-NI (checked at run time) the
    # assembly computes GHASH with PCLMULQDQ and never reads the default 4-bit table, which
    # costs 512 bytes in each direction of every connection; only a CPU without AES-NI would
    # fall back to the slower table-less C GHASH.
    configure_flags+=(--enable-intelasm --enable-aesni --enable-sp --enable-sp-asm
      --enable-aesgcm=small)
    ;;
  *)
    # Portable: SP math in C (still much faster than the generic big-integer code), and the
    # 4-bit GHASH table that the C AES-GCM uses.
    configure_flags+=(--enable-sp --enable-aesgcm)
    ;;
esac
# -fvisibility=hidden: nothing of wolfSSL is exported from what links it (with --exclude-libs).
# WOLFSSL_ALT_NAMES: Cert.altNames, to write the URI SAN of an X.509-SVID (5.5.4 has no
# --enable-altnames). WOLFSSL_ALWAYS_VERIFY_CB: the verify callback also sees certificates that
# verified, so it can apply the X.509-SVID rules to the peer's leaf (depth 0).
# WOLFSSL_EXTRA_ALERTS: the alerts on failures that --enable-opensslextra used to turn on (a peer
# refused for its certificate is told why, and logs it).
extra_cflags="-O2 -g -fvisibility=hidden -DWOLFSSL_ALT_NAMES -DWOLFSSL_ALWAYS_VERIFY_CB"
extra_cflags+=" -DWOLFSSL_EXTRA_ALERTS"
# HAVE_EXT_CACHE: wolfSSL_SESSION_dup (a client keeps its own copy of a session to resume, which a
# later ticket on the same connection cannot change under another thread reading it), and
# WOLFSSL_SESS_CACHE_NO_INTERNAL_STORE (sessions stay out of wolfSSL's process-wide cache).
extra_cflags+=" -DHAVE_EXT_CACHE"
# --enable-cryptocb with WOLF_CRYPTO_CB_FREE: TLS record AES-GCM can be routed to a faster
# implementation (tls/record_crypto.c, Intel's VAES/AVX-512 code) through a device id on the
# context; the callback on free lets that implementation release and wipe the key schedule it
# keeps for each key. Everything the callback declines runs wolfSSL's own code.
extra_cflags+=" -DWOLF_CRYPTO_CB_FREE"
# NO_WOLF_PRIVATE_KEY_ID: crypto callbacks would otherwise turn on keys named by id or label for
# a device (72 bytes more in every Aes, two per connection, and a context that accepts a
# certificate without its private key when a device id is set). libmeshtls always loads the key.
extra_cflags+=" -DNO_WOLF_PRIVATE_KEY_ID"

# The pin: wolfssl_version, wolfssl_orig_sha256, wolfssl_signer, wolfssl_suites.
source "$script_dir/source.pin"
build_cache_open wolfssl 0

version=$wolfssl_version
upstream=$version
prefix="$cache/wolfssl-$version-$key"

# ---- fetch and check the pinned tarball, unpack, configure, build, install ----------------------
# Per configuration: builds of two configurations may run at once (the lock is per key).
work="$cache/src-$version-$key"
debian_source_init "$cache" $wolfssl_suites
debian_source_orig wolfssl "$version" "$wolfssl_orig_sha256" "$work"
tarball="$work/wolfssl_$version.orig.tar.gz"
signature_check "$tarball" "$script_dir/release-key.asc" "$wolfssl_signer"
tree="$work/tree"
mkdir -p "$tree"
run tar -xzf "$tarball" -C "$tree" --strip-components=1

cd "$tree"
if [ ! -x configure ]; then
  command -v autoreconf >/dev/null || die "the source has no configure script and autoreconf is missing (install autoconf automake libtool)"
  say "generating configure (autoreconf)"
  run autoreconf -fi
fi
say "configuring wolfssl $upstream ($(uname -m)): ${configure_flags[*]}"
start=$SECONDS
run ./configure --prefix="$prefix" CC="$compiler" CFLAGS="$extra_cflags" "${configure_flags[@]}"
say "compiling ($(nproc) jobs)"
run make -j"$(nproc)"
rm -rf "$prefix"
run make install
# Session export in 5.5.4 and 5.9.2 leaves out the TLS 1.3 application traffic secrets, from which each
# KeyUpdate derives the next keys (RFC 8446 §7.2): an imported session would derive keys its peer
# does not have at the first KeyUpdate; nor that the peer's Finished was received (without it, a
# KeyUpdate is refused as out of order); nor does it carry a record half sent or half received,
# which no API shows either. Their place in struct WOLFSSL, measured here with the
# library's own headers, compiler and flags, lets libmeshtls carry them next to the export (tls/
# handover.c); the private header they are declared in is not installed.
cat >"$work/secret_offsets.c" <<'PROGRAM'
#include <wolfssl/options.h>
#include <wolfssl/internal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    printf("#define MT_WOLFSSL_CLIENT_SECRET_OFFSET %zu\n", offsetof(WOLFSSL, clientSecret));
    printf("#define MT_WOLFSSL_SERVER_SECRET_OFFSET %zu\n", offsetof(WOLFSSL, serverSecret));
    printf("#define MT_WOLFSSL_SECRET_LENGTH %d\n", (int)SECRET_LEN);
    printf("#define MT_WOLFSSL_OUTPUT_LENGTH_OFFSET %zu\n",
           offsetof(WOLFSSL, buffers) + offsetof(Buffers, outputBuffer) +
               offsetof(bufferStatic, length));
    printf("#define MT_WOLFSSL_INPUT_LENGTH_OFFSET %zu\n",
           offsetof(WOLFSSL, buffers) + offsetof(Buffers, inputBuffer) +
               offsetof(bufferStatic, length));
    printf("#define MT_WOLFSSL_INPUT_INDEX_OFFSET %zu\n",
           offsetof(WOLFSSL, buffers) + offsetof(Buffers, inputBuffer) +
               offsetof(bufferStatic, idx));
    printf("#define MT_WOLFSSL_STRUCT_SIZE %zu\n", sizeof(WOLFSSL));
    /* The extensions a finished handshake leaves behind (tls/extensions.c). */
    printf("#define MT_WOLFSSL_EXTENSIONS_OFFSET %zu\n", offsetof(WOLFSSL, extensions));
    printf("#define MT_WOLFSSL_TLSX_PRE_SHARED_KEY %d\n", (int)TLSX_PRE_SHARED_KEY);
    printf("#define MT_WOLFSSL_TLSX_PSK_KEY_EXCHANGE_MODES %d\n", (int)TLSX_PSK_KEY_EXCHANGE_MODES);
    /* A bit field: where setting it changes a byte. */
    MsgsReceived received;
    memset(&received, 0, sizeof(received));
    received.got_finished = 1;
    for (size_t i = 0; i < sizeof(received); i++)
        if (((unsigned char *)&received)[i] != 0)
            printf("#define MT_WOLFSSL_GOT_FINISHED_OFFSET %zu\n"
                   "#define MT_WOLFSSL_GOT_FINISHED_MASK %u\n",
                   offsetof(WOLFSSL, msgsReceived) + i, ((unsigned char *)&received)[i]);
    return 0;
}
PROGRAM
run $compiler $extra_cflags -I"$tree" -o "$work/secret_offsets" "$work/secret_offsets.c"
{
  echo "/* Generated by packaging/wolfssl/build.sh from this build's struct WOLFSSL. */"
  "$work/secret_offsets"
} >"$prefix/include/wolfssl/meshtls_secrets.h" || die "cannot measure struct WOLFSSL"
# A record of what was built and how, next to the library.
{
  echo "wolfssl $version (wolfssl_$version.orig.tar.gz, SHA-256 $wolfssl_orig_sha256, signed by $wolfssl_signer)"
  echo "configure ${configure_flags[*]} CFLAGS=\"$extra_cflags\""
  echo "built in $((SECONDS - start)) s"
} >"$prefix/BUILD-INFO"
touch "$prefix/.complete"
echo "$prefix" >"$selected"
cd "$cache"
rm -rf "$work"
say "installed $prefix in $((SECONDS - start)) s"
echo "$prefix"
