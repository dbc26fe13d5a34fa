#!/usr/bin/env bash
# Builds the libconfig that libmeshtls links in: Debian's own source package of libconfig (with
# Debian's patches), configured as a static PIC library whose every symbol is hidden. Linked into
# libmeshtls-preload.so and libmeshtls.so (with --exclude-libs as well), none of its names is
# exported or imported: a program that defines its own config_init or config_read (lighttpd does,
# and exports them) can no longer have our calls land in its functions, and the preload needs no
# library but the C library. Debian's libconfig-dev ships a libconfig.a, but built without -fPIC
# (R_X86_64_PC32 against stderr: it cannot go into a shared object) and against glibc < 2.33
# (__fxstat), so it is rebuilt here.
#
# The source is fetched with apt itself, with a private list and state directory
# (packaging/debian-source.sh), as for wolfSSL (packaging/wolfssl/build.sh).
#
# Usage: build.sh CACHE_DIR
#   Installs into CACHE_DIR/libconfig-<debian version>-<hash of the configuration>/ (lib/libconfig.a,
#   include/libconfig.h) and prints that directory as the last line of stdout (progress goes to
#   stderr, the full log to a file in the cache). A later run finds the finished install and
#   returns at once, without the network: the choice of source version is remembered in
#   CACHE_DIR/selected-libconfig-<hash>. Set MESHTLS_LIBCONFIG_REFRESH=1 to ask apt again for the newest
#   source version.
#
# Needs: apt, dpkg-dev (dpkg-source), a C toolchain and make (packaging/install-deps.sh); the
# upstream tarball ships its configure script and generated parser, so no autotools, flex or bison.
set -euo pipefail

script=libconfig/build.sh
script_dir=$(cd "$(dirname "$0")" && pwd)
# die, say, run and the apt source fetch
source "$script_dir/../debian-source.sh"

[ $# -eq 1 ] || die "usage: build.sh CACHE_DIR"
mkdir -p "$1" || die "cannot create cache directory $1"
cache=$(cd "$1" && pwd)

command -v make >/dev/null || die "make not found (run packaging/install-deps.sh)"
compiler=${CC:-cc}
command -v "${compiler%% *}" >/dev/null || die "C compiler '$compiler' not found"

# ---- the configuration --------------------------------------------------------------------------
# The C library only (no C++ library, no examples), static and PIC. -fvisibility=hidden: libconfig
# marks nothing for export on ELF (LIBCONFIG_API is empty there), so every symbol is hidden; the
# objects that link it still resolve its functions at link time, and nothing is left for the
# dynamic linker to bind by name.
configure_flags=(--enable-static --disable-shared --with-pic --disable-cxx --disable-examples)
extra_cflags="-O2 -g -fvisibility=hidden"

build_cache_open libconfig "${MESHTLS_LIBCONFIG_REFRESH:-0}"

# ---- the newest Debian source version -----------------------------------------------------------
debian_source_init "$cache"
version=$(debian_source_newest libconfig)
prefix="$cache/libconfig-$version-$key"
if [ -f "$prefix/.complete" ]; then
  echo "$prefix" >"$selected"
  say "using cached $prefix"
  echo "$prefix"
  exit 0
fi

# ---- fetch, unpack (Debian patches applied), configure, build, install the library alone --------
work="$cache/src-libconfig-$version"
debian_source_unpack libconfig "$version" "$work"
cd "$work/tree"
say "configuring libconfig $version ($(uname -m)): ${configure_flags[*]}"
start=$SECONDS
run ./configure --prefix="$prefix" CC="$compiler" CFLAGS="$extra_cflags" "${configure_flags[@]}"
say "compiling"
run make -C lib -j"$(nproc)"
rm -rf "$prefix"
run make -C lib install
# Checked, not assumed: a symbol left visible would be exported by whatever links it without
# --exclude-libs, and could be bound to a program's function of the same name.
visible=$(readelf -sW "$prefix/lib/libconfig.a" |
  awk '$5 == "GLOBAL" && $6 == "DEFAULT" && $7 != "UND" { print $8 }' | head -n5)
[ -z "$visible" ] || die "libconfig.a still has visible symbols: $visible"
{
  echo "libconfig $version (Debian source package)"
  echo "configure ${configure_flags[*]} CFLAGS=\"$extra_cflags\""
  echo "built in $((SECONDS - start)) s"
} >"$prefix/BUILD-INFO"
touch "$prefix/.complete"
echo "$prefix" >"$selected"
cd "$cache"
rm -rf "$work"
say "installed $prefix in $((SECONDS - start)) s"
echo "$prefix"
