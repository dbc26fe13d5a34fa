#!/usr/bin/env bash
# Installs dependencies, builds libmeshtls twice and runs the whole test suite:
#   build-test      plain build: every suite (unit, integration, fuzz-regress, lint)
#   build-test-san  AddressSanitizer + UBSan: the unit, integration and fuzz-regress suites
# Ends with meson's totals over both runs as one line:  tests: N passed, M failed
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

plain=build-test
sanitized=build-test-san
# Both builds link the same bundled wolfSSL: built once, cached by version and configuration.
wolfssl_cache="$PWD/build-wolfssl-cache"
[ -f "$plain/build.ninja" ] || meson setup "$plain" -Dwolfssl_cache_dir="$wolfssl_cache"
[ -f "$sanitized/build.ninja" ] ||
  meson setup "$sanitized" -Db_sanitize=address,undefined -Db_lundef=false \
    -Dwolfssl_cache_dir="$wolfssl_cache"
meson compile -C "$plain"
meson compile -C "$sanitized"

status=0
meson test -C "$plain" --print-errorlogs --num-processes 2 || status=1
meson test -C "$sanitized" --print-errorlogs --num-processes 2 \
  --suite unit --suite integration --suite fuzz-regress || status=1

# meson's own results of the two runs just made, as one line.
python3 - "$plain/meson-logs/testlog.json" "$sanitized/meson-logs/testlog.json" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path) as log:
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
