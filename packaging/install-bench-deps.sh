#!/usr/bin/env bash
# Installs the Debian packages the benchmarks of tests/bench need beyond the build and test ones
# (packaging/install-deps.sh): stunnel4 for the sidecar baseline, iperf3 and sockperf for bulk
# and latency, nginx and ab (apache2-utils) for new connections from a client that keeps Nagle
# on, linux-perf and valgrind for profiling.
# Debian 12 (bookworm), as root. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

exec bash packaging/install-deps.sh stunnel4 iperf3 sockperf openssl nginx apache2-utils \
  linux-perf valgrind
