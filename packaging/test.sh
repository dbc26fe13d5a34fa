#!/usr/bin/env bash
# Installs dependencies, builds libmeshtls with AddressSanitizer + UBSan, and runs the whole
# test suite (meson test: unit, integration, fuzz-regress, lint). Ends with one line
#   tests: N passed, M failed
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh
build=${MESHTLS_TEST_BUILD_DIR:-build-test}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Db_lundef=false
fi
meson compile -C "$build"

status=0
meson test -C "$build" --print-errorlogs --num-processes 2 || status=$?

# meson's own summary of the run just made, as one line.
python3 - "$build/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
with open(sys.argv[1]) as log:
    for line in log:
        result = json.loads(line)["result"]
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"tests: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
exit "$status"
