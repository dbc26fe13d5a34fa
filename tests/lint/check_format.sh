#!/usr/bin/env bash
# Lint: every C source and header is formatted with the repository's .clang-format.
set -euo pipefail
cd "$1"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find libmeshtls tests examples -name '*.[ch]')
unformatted=()
for file in $files; do
  if ! clang-format --style=file --dry-run --Werror "$file" >/dev/null 2>&1; then
    unformatted+=("$file")
  fi
done
if [ "${#unformatted[@]}" -gt 0 ]; then
  echo "not formatted (run clang-format -i): ${unformatted[*]}"
  exit 1
fi
echo "$(echo "$files" | wc -w) files formatted"
