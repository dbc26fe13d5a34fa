#!/usr/bin/env bash
# Installs dependencies, builds libmeshtls five times and runs the whole test suite under the
# sanitizers and checkers:
#   build-test        plain gcc build, _FORTIFY_SOURCE=3: every suite (unit, integration,
#                     fuzz-regress, threads, lint; container, the images built and run with
#                     podman, on its own); then the unit suite again under valgrind
#                     memcheck (meson test --setup valgrind: no error, no definite/indirect leak)
#   build-test-san    AddressSanitizer + UBSan: the unit, integration, fuzz-regress and threads suites
#   build-test-tsan   ThreadSanitizer: the threads suite (many threads on meshed sockets, direct
#                     link and preload with epoll) and the unit suite
#   build-test-clang  clang, warning-free (werror): the libFuzzer binaries run for a bounded time
#                     each (suite fuzz), and the unit and fuzz-regress suites
#   build-test-system -Dwolfssl=system, Debian's libwolfssl: the unit, lint and integration
#                     suites (no session hand-over there: the tests check the reset at exec and
#                     the fail-closed fork relay instead, and skip, saying why, what that library
#                     cannot do)
# Every suite writes its figures (e.g. fuzz-<target>.json) to $MESHTLS_FIGURES_DIR,
# build-test/figures. Ends with meson's totals over all runs as one line:
#   tests: N passed, M failed
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/install-deps.sh

plain=build-test
sanitized=build-test-san
threads=build-test-tsan
clang=build-test-clang
system=build-test-system
export MESHTLS_FIGURES_DIR="$PWD/$plain/figures"
rm -rf "$MESHTLS_FIGURES_DIR"
mkdir -p "$MESHTLS_FIGURES_DIR"
# Results of an earlier run must not be counted if a stage does not run this time.
rm -f "$plain"/meson-logs/testlog*.json "$sanitized"/meson-logs/testlog*.json \
  "$threads"/meson-logs/testlog*.json "$clang"/meson-logs/testlog*.json \
  "$system"/meson-logs/testlog*.json

# Wall time of each stage, printed at the end.
timings=()
stage_start=$SECONDS
stage_done() {
  timings+=("$(printf '%-34s %4d s' "$1" $((SECONDS - stage_start)))")
  stage_start=$SECONDS
}

# All builds link the same bundled wolfSSL: built once, cached by version and configuration.
# The clang build names gcc (cc) for it, so it reuses that cache instead of building its own
# (the cache key includes the compiler); our code is what clang must compile warning-free.
wolfssl_cache="$PWD/build-wolfssl-cache"
[ -f "$plain/build.ninja" ] || meson setup "$plain" -Dwolfssl_cache_dir="$wolfssl_cache"
[ -f "$sanitized/build.ninja" ] ||
  meson setup "$sanitized" -Db_sanitize=address,undefined -Db_lundef=false \
    -Dwolfssl_cache_dir="$wolfssl_cache"
[ -f "$threads/build.ninja" ] ||
  meson setup "$threads" -Db_sanitize=thread -Db_lundef=false -Dbench=false \
    -Dintegration_tests=false -Dwolfssl_cache_dir="$wolfssl_cache"
[ -f "$clang/build.ninja" ] ||
  CC=clang meson setup "$clang" -Dintegration_tests=false -Dwolfssl_cc=cc \
    -Dwolfssl_cache_dir="$wolfssl_cache"
# The system wolfSSL (libwolfssl-dev, packaging/install-deps.sh); libconfig stays bundled and
# comes from the same cache.
[ -f "$system/build.ninja" ] ||
  meson setup "$system" -Dwolfssl=system -Dbench=false -Dwolfssl_cache_dir="$wolfssl_cache"
stage_done "configure"
meson compile -C "$plain"
stage_done "compile $plain"
meson compile -C "$sanitized"
stage_done "compile $sanitized"
meson compile -C "$threads"
stage_done "compile $threads"
meson compile -C "$clang"
stage_done "compile $clang (werror)"
meson compile -C "$system"
stage_done "compile $system"

status=0
meson test -C "$plain" --print-errorlogs --num-processes 2 --no-suite container || status=1
stage_done "test $plain (all suites)"
# The container images and the systemd unit in a booted container (podman, runc): the first run
# builds the images' packages from source in a container and a Debian 12 base with debootstrap.
# Its own log (testlog-container.json): the run above's testlog.json is the plain build's record.
meson test -C "$plain" --print-errorlogs --num-processes 1 --logbase testlog-container \
  --suite container || status=1
stage_done "test $plain (container)"
# packaging_debs (suite packaging) builds its release packages the same way from any build
# directory: the plain stage above ran it; here and in the system stage it would only repeat it.
meson test -C "$sanitized" --print-errorlogs --num-processes 2 \
  --suite unit --suite integration --suite fuzz-regress --suite threads --no-suite packaging \
  || status=1
stage_done "test $sanitized"

# Valgrind memcheck over the unit suite: any memory error or definite/indirect leak fails.
meson test -C "$plain" --setup valgrind --print-errorlogs --num-processes 2 --no-rebuild \
  --suite unit || status=1
stage_done "test $plain under valgrind (unit)"

# ThreadSanitizer: a report fails the test (exit status 66); second_deadlock_stack names both
# sides of a lock-order inversion. Instrumented code runs 5-15x slower (test_detect's exhaustive
# truncation loops take ~40 s), hence the longer timeouts.
TSAN_OPTIONS="second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  meson test -C "$threads" --print-errorlogs --num-processes 2 --timeout-multiplier 4 \
  --suite threads --suite unit || status=1
stage_done "test $threads (threads, unit)"

meson test -C "$clang" --print-errorlogs --num-processes 2 \
  --suite fuzz --suite unit --suite fuzz-regress || status=1
stage_done "test $clang (fuzz, unit)"

# Every suite that differs by library, whole: about 7 minutes on 2 cores (integration ~6). Its
# figures stay in its own directory: the reliability table shows the sanitized run's.
MESHTLS_FIGURES_DIR="$PWD/$system/figures" \
  meson test -C "$system" --print-errorlogs --num-processes 2 \
    --suite unit --suite lint --suite integration --no-suite packaging || status=1
stage_done "test $system (unit, lint, integration)"

echo "stage wall times:"
printf '  %s\n' "${timings[@]}"

# The reliability table (SECURITY.md): attacks, injected faults, fuzzing, and each checker's run,
# from the figures the suites above wrote (the sanitized run writes last, so its attack and fault
# figures are the ones shown).
python3 tests/reliability/run.py --figures "$MESHTLS_FIGURES_DIR" \
  --log "gcc, _FORTIFY_SOURCE=3=$plain/meson-logs/testlog.json" \
  --log "ASan+UBSan=$sanitized/meson-logs/testlog.json" \
  --log "valgrind memcheck=$plain/meson-logs/testlog-valgrind.json" \
  --log "ThreadSanitizer=$threads/meson-logs/testlog.json" \
  --log "clang, libFuzzer=$clang/meson-logs/testlog.json" || status=1

# meson's own results of the runs just made, as one line.
python3 - "$plain"/meson-logs/testlog.json "$plain"/meson-logs/testlog-container.json \
  "$plain"/meson-logs/testlog-valgrind.json \
  "$sanitized"/meson-logs/testlog.json "$threads"/meson-logs/testlog.json \
  "$clang"/meson-logs/testlog.json "$system"/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        log = open(path)
    except FileNotFoundError:
        print(f"{path}: missing (that run did not happen)")
        failed += 1
        continue
    with log:
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
