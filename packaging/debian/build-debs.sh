#!/usr/bin/env bash
# Builds installable Debian packages of libmeshtls without debhelper: configures a build with
# prefix /usr, installs it into a staging tree (meson install --destdir), splits the tree into
# libmeshtls0, libmeshtls-dev, meshtls-agent and meshtls, and builds each with dpkg-deb.
#
#   packaging/debian/build-debs.sh BUILD_DIR OUT_DIR
#
# BUILD_DIR is an existing meson build directory of this source tree; its bundled wolfSSL and
# libconfig cache (its wolfssl_cache_dir and libconfig_cache_dir options, else
# BUILD_DIR/wolfssl-cache) is reused when present. The package build lives in
# BUILD_DIR/debian-build (kept, so a second run only rebuilds what changed) and the .deb files are
# written to OUT_DIR. Needs meson and ninja (and what the build itself needs), dpkg and dpkg-dev
# (dpkg-deb, dpkg-query, dpkg-architecture), binutils (readelf, nm), libc-bin (ldconfig), gzip,
# git (the changelog's date) and python3 (meson's introspection data); packaging/install-deps.sh
# installs them all. Each package carries a DEP-5 copyright file, a changelog and, where it links
# libraries statically, a Built-Using field; libmeshtls0 carries shlibs and symbols files.
# `lintian` reports no error on the result (tests/integration/test_packaging_debs.py checks it).
set -euo pipefail

die() { echo "build-debs.sh: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: build-debs.sh BUILD_DIR OUT_DIR"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
[ -d "$1" ] || die "BUILD_DIR $1 does not exist (configure one with: meson setup build)"
build_dir=$(cd "$1" && pwd)
mkdir -p "$2" || die "cannot create OUT_DIR $2"
out_dir=$(cd "$2" && pwd)
for tool in meson dpkg-deb dpkg-architecture readelf nm strip dpkg-query ldconfig gzip python3; do
  command -v "$tool" > /dev/null || die "$tool not found (run packaging/install-deps.sh)"
done

arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
package_build="$build_dir/debian-build"
stage="$build_dir/debian-stage"
trees="$build_dir/debian-trees"

# 1. Configure (once) and build only what is installed: no tests, no benchmarks.
if [ ! -f "$package_build/build.ninja" ]; then
  options=(--prefix=/usr --libdir="lib/$multiarch" --sysconfdir=/etc --buildtype=release
           -Dintegration_tests=false -Dbench=false)
  # Share the bundled wolfSSL of BUILD_DIR: its wolfssl_cache_dir option, else its default cache.
  wolfssl_cache=$(meson introspect --buildoptions "$build_dir" 2> /dev/null | python3 -c '
import json, sys
print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "wolfssl_cache_dir"), ""))
' || true)
  if [ -z "$wolfssl_cache" ] && [ -d "$build_dir/wolfssl-cache" ]; then
    wolfssl_cache="$build_dir/wolfssl-cache"
  fi
  if [ -n "$wolfssl_cache" ]; then
    options+=(-Dwolfssl_cache_dir="$wolfssl_cache")
  fi
  # The bundled libconfig follows the wolfSSL cache unless BUILD_DIR names a cache of its own.
  libconfig_cache=$(meson introspect --buildoptions "$build_dir" 2> /dev/null | python3 -c '
import json, sys
print(next((o["value"] for o in json.load(sys.stdin) if o["name"] == "libconfig_cache_dir"), ""))
' || true)
  if [ -n "$libconfig_cache" ]; then
    options+=(-Dlibconfig_cache_dir="$libconfig_cache")
  fi
  meson setup "$package_build" "$source_dir" "${options[@]}" > "$build_dir/debian-setup.log" 2>&1 ||
    die "meson setup failed; see $build_dir/debian-setup.log"
fi
# Targets are named from meson's introspection data, which a kept build directory refreshes only
# when it regenerates: regenerate first, so that a changed project (its version, hence the
# shared library's file name) is the one asked for.
ninja -C "$package_build" build.ninja > "$build_dir/debian-compile.log" 2>&1 ||
  die "meson could not regenerate $package_build; see $build_dir/debian-compile.log"
targets=(meshtls-agent meshtls-injector meshtls:executable meshtls:shared_library meshtls-preload)
# The musl build of the preload, beside the glibc one, where musl-gcc was found (-Dmusl).
if meson introspect --targets "$package_build" | grep -q 'meshtls-preload-musl'; then
  targets+=(meshtls-preload-musl)
fi
meson compile -C "$package_build" "${targets[@]}" >> "$build_dir/debian-compile.log" 2>&1 ||
  die "meson compile failed; see $build_dir/debian-compile.log"
rm -rf "$stage" "$trees"
meson install -C "$package_build" --destdir "$stage" --no-rebuild --strip --quiet ||
  die "meson install into $stage failed"

version=$(meson introspect --projectinfo "$package_build" |
          python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
debian_version="$version-1"
libdir="usr/lib/$multiarch"

# 2. The pkg-config file, unless meson installed one.
if [ ! -f "$stage/$libdir/pkgconfig/meshtls.pc" ]; then
  mkdir -p "$stage/$libdir/pkgconfig"
  cat > "$stage/$libdir/pkgconfig/meshtls.pc" <<EOF
prefix=/usr
libdir=\${prefix}/lib/$multiarch
includedir=\${prefix}/include

Name: meshtls
Description: Transparent mutual TLS 1.3 with SPIFFE identities from a node-local agent
Version: $version
Libs: -L\${libdir} -lmeshtls
Cflags: -I\${includedir}
EOF
fi

# 3. Split the staged tree: move each path (relative to the stage) into a package's tree.
take() {  # take PACKAGE PATH...
  local package=$1 path
  shift
  for path in "$@"; do
    [ -e "$stage/$path" ] || [ -L "$stage/$path" ] || die "$path is not in the meson install"
    mkdir -p "$trees/$package/$(dirname "$path")"
    mv "$stage/$path" "$trees/$package/$path"
  done
}
shopt -s nullglob
sonames=("$stage/$libdir"/libmeshtls.so.*)
[ "${#sonames[@]}" -gt 0 ] || die "libmeshtls.so.* is not in the meson install"
take libmeshtls0 "${sonames[@]#"$stage/"}" "$libdir/meshtls/libmeshtls-preload.so"
if [ -e "$stage/$libdir/meshtls/libmeshtls-preload-musl.so" ]; then
  take libmeshtls0 "$libdir/meshtls/libmeshtls-preload-musl.so"
  # meson's --strip covers its own targets only; this one is a custom target.
  strip --strip-unneeded "$trees/libmeshtls0/$libdir/meshtls/libmeshtls-preload-musl.so"
  # It needs musl's libc.so, which the musl program it is loaded into brings (an Alpine
  # image); no Debian package provides it to the glibc system this package installs on.
  mkdir -p "$trees/libmeshtls0/usr/share/lintian/overrides"
  printf '%s\n' "# Built against musl for musl programs, whose own libc.so it uses." \
    "libmeshtls0: library-not-linked-against-libc [$libdir/meshtls/libmeshtls-preload-musl.so]" \
    > "$trees/libmeshtls0/usr/share/lintian/overrides/libmeshtls0"
fi
take libmeshtls-dev usr/include/meshtls.h "$libdir/libmeshtls.so" "$libdir/pkgconfig/meshtls.pc"
take meshtls-agent usr/sbin/meshtls-agent usr/sbin/meshtls-injector
take meshtls usr/bin/meshtls
leftover=$(find "$stage" -not -type d)
[ -z "$leftover" ] || die "installed files no package owns:"$'\n'"$leftover"

agent_tree="$trees/meshtls-agent"
install -D -m 0644 "$here/meshtls-agent.service" "$agent_tree/lib/systemd/system/meshtls-agent.service"
install -D -m 0644 "$here/agent.conf" "$agent_tree/etc/meshtls/agent.conf"
# The workload configuration belongs to the package whose library reads it.
install -D -m 0644 "$here/meshtls.conf" "$trees/libmeshtls0/etc/meshtls/meshtls.conf"
# Shared objects are not executables (meson installs them 0755).
find "$trees" -name '*.so*' -type f -exec chmod 0644 {} +

# Every package documents its licences and its history. The changelog's date is the source's
# (SOURCE_DATE_EPOCH, else the last commit's), so that two builds of one tree are identical.
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$source_dir" log -1 --format=%ct 2> /dev/null || date +%s)}
for package in libmeshtls0 libmeshtls-dev meshtls-agent meshtls; do
  doc="$trees/$package/usr/share/doc/$package"
  install -D -m 0644 "$here/copyright" "$doc/copyright"
  {
    echo "libmeshtls ($debian_version) unstable; urgency=medium"
    echo
    echo "  * libmeshtls $version, packaged by packaging/debian/build-debs.sh."
    echo
    echo " -- libmeshtls maintainers <meshtls@example.org>  $(LC_ALL=C date -u -R -d "@$epoch")"
  } | gzip -9n > "$doc/changelog.Debian.gz"
  chmod 0644 "$doc/changelog.Debian.gz"
done
# Manual pages.
for page in meshtls.1:meshtls meshtls-agent.8:meshtls-agent meshtls-injector.8:meshtls-agent; do
  file=${page%%:*}
  install -d "$trees/${page#*:}/usr/share/man/man${file##*.}"
  gzip -9n < "$here/$file" > "$trees/${page#*:}/usr/share/man/man${file##*.}/$file.gz"
  chmod 0644 "$trees/${page#*:}/usr/share/man/man${file##*.}/$file.gz"
done
# The static-pie meshtls command has no program interpreter and no NEEDED entry by design;
# lintian takes it for a shared library without dependencies.
mkdir -p "$trees/meshtls/usr/share/lintian/overrides"
printf '%s\n' "# Linked -static-pie on purpose: no dynamic loader before every meshed start." \
  "meshtls: shared-library-lacks-prerequisites [usr/bin/meshtls]" \
  > "$trees/meshtls/usr/share/lintian/overrides/meshtls"

# 4. Depends from the ELF files' NEEDED entries: the package owning each library, at least the
#    upstream version built against. Our own libraries map to our own packages.
depends_of() {  # depends_of TREE -> "pkg (>= v), ..." on stdout
  local tree=$1 file library path owner version
  local -A seen=()
  while IFS= read -r file; do
    readelf -h "$file" > /dev/null 2>&1 || continue
    # The musl build of the preload needs musl's libc.so, which the musl programs it is loaded
    # into bring with them: no Debian package of this system's.
    case $file in */libmeshtls-preload-musl.so) continue ;; esac
    for library in $(readelf -d "$file" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case $library in
        libmeshtls.so.*) seen[libmeshtls0]="libmeshtls0 (= $debian_version)"; continue ;;
        ld-linux*) continue ;;
      esac
      path=$(ldconfig -p | awk -v lib="$library" '$1 == lib { print $NF; exit }')
      [ -n "$path" ] || die "$file needs $library, which ldconfig does not know"
      owner=$(dpkg -S "$path" 2> /dev/null || dpkg -S "$(readlink -f "$path")" 2> /dev/null) ||
        die "no Debian package owns $path (needed by $file)"
      owner=${owner%%:*}
      version=$(dpkg-query -W -f='${Version}' "$owner:$arch" 2> /dev/null ||
                dpkg-query -W -f='${Version}' "$owner")
      version=${version#*:}
      seen[$owner]="$owner (>= ${version%%-*})"
    done
  done < <(find "$tree" -type f)
  local IFS=','
  local list="${seen[*]}"
  echo "${list//,/, }"
}

# 5. Built-Using: the Debian source packages whose code a package's binaries carry, linked
#    statically. The bundled wolfSSL is the release tarball of Debian's wolfssl source package
#    (packaging/wolfssl/source.pin names the release and the Debian revision it is the orig of).
option_of() {  # option_of NAME -> the package build's value of a meson option
  meson introspect --buildoptions "$package_build" | python3 -c '
import json, sys
print(next((str(o["value"]) for o in json.load(sys.stdin) if o["name"] == sys.argv[1]), ""))
' "$1"
}
source_version() {  # source_version BINARY-PACKAGE -> "source (= version)" of the installed one
  dpkg-query -W -f='${source:Package} (= ${source:Version})' "$1" ||
    die "$1 is not installed (run packaging/install-deps.sh)"
}
static_sources=()
if [ "$(option_of wolfssl)" = bundled ]; then
  wolfssl_debian=$(sed -n 's/^wolfssl_debian_version=//p' "$source_dir/packaging/wolfssl/source.pin")
  [ -n "$wolfssl_debian" ] || die "packaging/wolfssl/source.pin names no wolfssl_debian_version"
  static_sources+=("wolfssl (= $wolfssl_debian)")
fi
if [ "$(option_of libconfig)" = bundled ]; then
  static_sources+=("$(source_version libconfig-dev)")
fi
# The record crypto of intel-ipsec-mb, linked from its static archive where the build found it.
ipsec_mb=()
# (grep -c reads to the end: with -q, nm's SIGPIPE would fail the pipeline under pipefail.)
if nm "$package_build/libmeshtls-preload.so" 2> /dev/null | grep -c ' imb_aes_gmac_' > /dev/null; then
  ipsec_mb=("$(source_version libipsec-mb-dev)")
fi
built_using() {  # built_using PACKAGE -> its Built-Using value ("" for none)
  local list=()
  case $1 in
    libmeshtls0) list=("${static_sources[@]}" "${ipsec_mb[@]}") ;;
    meshtls-agent) list=("${static_sources[@]}") ;;
    meshtls)
      list=("${static_sources[@]}" "${ipsec_mb[@]}")
      # Linked -static-pie (no program interpreter): the C library is in it too.
      if ! readelf -l "$trees/meshtls/usr/bin/meshtls" | grep -q 'program interpreter'; then
        list+=("$(source_version libc6-dev)")
      fi
      ;;
  esac
  local IFS=','
  local joined="${list[*]}"
  echo "${joined//,/, }"
}

control() {  # control PACKAGE SECTION EXTRA-DEPENDS DESCRIPTION...
  local package=$1 section=$2 extra=$3 tree="$trees/$1" depends
  shift 3
  depends=$(depends_of "$tree")
  if [ -n "$extra" ]; then depends=${depends:+$depends, }$extra; fi
  mkdir -p "$tree/DEBIAN"
  {
    echo "Package: $package"
    echo "Version: $debian_version"
    echo "Architecture: $arch"
    echo "Maintainer: libmeshtls maintainers <meshtls@example.org>"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$tree" | cut -f1)"
    [ -z "$depends" ] || echo "Depends: $depends"
    local using
    using=$(built_using "$package")
    [ -z "$using" ] || echo "Built-Using: $using"
    echo "Section: $section"
    echo "Priority: optional"
    echo "Description: $1"
    shift
    for line in "$@"; do echo " $line"; done
  } > "$tree/DEBIAN/control"
}

control libmeshtls0 libs "" \
  "transparent mutual TLS for unmodified programs (library)" \
  "libmeshtls turns the TCP connections of an unmodified program into TLS 1.3" \
  "with mutual authentication and SPIFFE identities issued by meshtls-agent." \
  "." \
  "This package holds libmeshtls.so.0 for programs that link it and the" \
  "LD_PRELOAD library /usr/lib/$multiarch/meshtls/libmeshtls-preload.so."
printf 'activate-noawait ldconfig\n' > "$trees/libmeshtls0/DEBIAN/triggers"
printf '/etc/meshtls/meshtls.conf\n' > "$trees/libmeshtls0/DEBIAN/conffiles"
# shlibs and symbols: a program linked against libmeshtls.so.0 gets its dependency from
# dpkg-shlibdeps. Every exported function and version node (preload/libmeshtls.map) is listed
# as NAME@VERSION with the release that first had it (all of them: 0.2.0, the first packaged).
library="$trees/libmeshtls0/${sonames[0]#"$stage/"}"
soname=$(readelf -d "$library" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libmeshtls.so.0 ] || die "unexpected SONAME $soname of $library"
printf 'libmeshtls 0 libmeshtls0 (>= %s)\n' "$version" > "$trees/libmeshtls0/DEBIAN/shlibs"
{
  echo "$soname libmeshtls0 #MINVER#"
  nm -D --defined-only --with-symbol-versions "$library" |
    awk '$2 == "A" { print $3 "@" $3; next } $2 ~ /^[TWDBR]$/ { sub(/@@?/, "@", $3); print $3 }' |
    sort -u | while IFS= read -r symbol; do echo " $symbol $version"; done
} > "$trees/libmeshtls0/DEBIAN/symbols"

control libmeshtls-dev libdevel "libmeshtls0 (= $debian_version)" \
  "transparent mutual TLS for unmodified programs (development files)" \
  "The header meshtls.h, the libmeshtls.so link and the pkg-config file" \
  "meshtls.pc for C programs that link libmeshtls directly."

control meshtls-agent net "" \
  "node-local agent issuing SPIFFE identities to libmeshtls workloads" \
  "meshtls-agent attests local processes (SO_PEERCRED, /proc/PID/exe), signs" \
  "their CSRs into short-lived X.509-SVIDs and serves the trust bundle and" \
  "Prometheus metrics. Runs as the systemd unit meshtls-agent.service with its" \
  "socket at /run/meshtls/agent.sock and configuration in /etc/meshtls/." \
  "." \
  "The package also holds meshtls-injector, the Kubernetes mutating admission" \
  "webhook that adds the preload and the agent's socket to pods."
printf '/etc/meshtls/agent.conf\n' > "$agent_tree/DEBIAN/conffiles"
install -m 0755 "$here/meshtls-agent.postinst" "$agent_tree/DEBIAN/postinst"
install -m 0755 "$here/meshtls-agent.prerm" "$agent_tree/DEBIAN/prerm"
install -m 0755 "$here/meshtls-agent.postrm" "$agent_tree/DEBIAN/postrm"

control meshtls utils "libmeshtls0 (= $debian_version)" \
  "command-line tool for libmeshtls" \
  "meshtls run starts a program with libmeshtls preloaded; meshtls id, status," \
  "check and config check query the agent and diagnose programs and" \
  "configurations."

# 6. Build the packages.
for package in libmeshtls0 libmeshtls-dev meshtls-agent meshtls; do
  deb="$out_dir/${package}_${debian_version}_${arch}.deb"
  dpkg-deb --root-owner-group -Zxz --build "$trees/$package" "$deb" > /dev/null ||
    die "dpkg-deb failed for $package"
  echo "$deb"
done
