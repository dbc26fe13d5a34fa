#!/usr/bin/env bash
# Lint: every C source and header is formatted with the repository's .clang-format.
set -euo pipefail
cd "$1"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find libmeshtls tests examples -name '*.[ch]')
# One clang-format process for all files (one per file takes most of a minute on a busy machine);
# each unformatted file is named in its diagnostics.
# shellcheck disable=SC2086
report=$(clang-format --style=file --dry-run --Werror $files 2>&1 >/dev/null || true)
unformatted=$(printf '%s\n' "$report" | sed -n 's/^\([^:]*\):[0-9]*:[0-9]*: error: .*/\1/p' | sort -u)
if [ -n "$unformatted" ]; then
  echo "not formatted (run clang-format -i):" $unformatted
  exit 1
fi
if [ -n "$report" ]; then
  echo "clang-format failed: $report"
  exit 1
fi
echo "$(echo "$files" | wc -w) files formatted"
