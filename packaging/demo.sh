#!/usr/bin/env bash
# Installs dependencies, builds libmeshtls, and runs the demo: an agent with a dev CA, an
# unmodified python3 -m http.server and an unmodified curl talking mutual TLS 1.3.
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
build=${MESHTLS_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release
fi
meson compile -C "$build"
exec /usr/bin/python3 examples/demo.py "$build"
