#!/usr/bin/env bash
# Installs every Debian package libmeshtls needs to build, test and run its demo, and any
# further package names given as arguments.
# Debian 12 (bookworm), as root. Safe to run again: apt-get skips what is installed.
set -euo pipefail

packages=(
  # build
  build-essential meson ninja-build pkg-config
  # libconfig-dev and libwolfssl-dev: headers and pkg-config for -Dlibconfig=system and
  # -Dwolfssl=system; the default build compiles both from Debian's source packages
  libwolfssl-dev libconfig-dev
  libmicrohttpd-dev   # the agent's metrics endpoint, and meshtls-injector's HTTPS
  libjson-c-dev       # meshtls-injector (AdmissionReviews, JSON Patches) and the agent's kubelet client (PodList)
  libcurl4-gnutls-dev # the agent's kubelet client (HTTPS GET, RSA chains) over the GnuTLS it already has
  # the bundled wolfSSL and libconfig (packaging/{wolfssl,libconfig}/build.sh): apt-get source +
  # dpkg-source, gpgv (the wolfSSL tarball's signature), and autotools because wolfSSL's release
  # tarball ships no configure script
  dpkg-dev gpgv autoconf automake libtool
  # tests
  libcmocka-dev python3 curl openssl clang-format binutils strace
  lintian   # the Debian packages are checked for lintian errors (test_packaging_debs.py)
  g++   # meshtls.h compiled as C++ (tests/lint/check_header.sh)
  # the event-loop examples (examples/echo_server_libevent.c, echo_client_libuv.c)
  libevent-dev libuv1-dev
  libseccomp-dev  # sandboxed children: tests/integration/sandbox_peer.c
  libcap2-bin   # setcap: meshtls check on a program with file capabilities
  gdb           # gcore: the key-hygiene test dumps a running agent and searches the core
  musl-tools    # musl-gcc: libmeshtls-preload-musl.so, and the musl programs of its tests
  # real-program integration suite and soak test
  nginx redis-server redis-tools memcached iperf3 sockperf wrk
  # a client that keeps Nagle on, new connection per request (ab: test_nagle_wire.py)
  apache2-utils
  # a server that exports its own config_init/config_read (test_real_lighttpd.py)
  lighttpd
  # a handler the preload cannot follow (a static binary) exec'd on a meshed connection
  busybox-static
  # programs no preload can enter, built at test time: Go programs meshed by the supervisor
  # (test_supervisor_go.py) or refused by `meshtls run` (test_run_refusals.py), musl programs,
  # and io_uring users (meshtls check; test_check.c, test_run_refusals.py)
  golang-go musl-tools liburing-dev
  # a privilege-separated server: one connection used by the monitor, a sandboxed pre-auth
  # child and the post-auth child in turn (test_real_sshd.py)
  openssh-server openssh-client
  # metrics format checks: the Prometheus text parser and promtool
  python3-prometheus-client prometheus
  # policy tests: server-speaks-first with the real MariaDB server and client; the README
  # rollout walkthrough (wget as a second client, ss to wait for a port)
  mariadb-server mariadb-client wget iproute2
  # packaging tests: the Kubernetes manifests are parsed with PyYAML
  python3-yaml
  # meshtls-injector's tests apply its JSON Patches (jsonpatch) and check the patched pods
  # against the Kubernetes API models (the kubernetes client's V1Pod)
  python3-jsonpatch python3-kubernetes
  # the container suite: the Dockerfile's images built and run with podman and runc (crun cannot
  # set rlimits on every host), from a Debian 12 base made offline with debootstrap; systemd for
  # systemd-analyze security on meshtls-agent.service (test_packaging_debs.py)
  podman runc debootstrap systemd
  # checkers in packaging/test.sh: valgrind memcheck over the unit tests; clang for the
  # warning-free second compiler and libFuzzer (its runtime and the sanitizers' are in
  # libclang-rt-14-dev, only recommended by clang); llvm for llvm-symbolizer in their reports.
  # gcc's ThreadSanitizer runtime (libtsan2) comes with build-essential.
  valgrind clang libclang-rt-14-dev llvm
)
# Kubernetes manifests (test_packaging_kubernetes.py): rendered with `kubectl kustomize` and
# validated against the API models of python3-kubernetes (above). Debian's kubectl only where
# none is on PATH already (another package's kubectl would conflict with it).
if ! command -v kubectl > /dev/null; then
  packages+=(kubernetes-client)
fi
# The VAES/AVX-512 AES-GCM of TLS records (libmeshtls/tls/record_crypto.c) links Intel's
# libipsec-mb statically; Debian ships it for amd64 only.
if [ "$(dpkg --print-architecture)" = amd64 ]; then
  packages+=(libipsec-mb-dev)
fi
# Extra package names given as arguments are installed the same way (install-bench-deps.sh).
packages+=("$@")

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
