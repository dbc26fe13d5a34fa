#!/usr/bin/env bash
# Installs the Debian packages the benchmarks of tests/bench need beyond the build and test ones
# (packaging/install-deps.sh): stunnel4 for the sidecar baseline, iperf3 and sockperf for bulk
# and latency, linux-perf and valgrind for profiling. The test suite needs none of them.
# Debian 12 (bookworm), as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

packages=(stunnel4 iperf3 sockperf openssl linux-perf valgrind)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-bench-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-bench-deps.sh: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-bench-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
