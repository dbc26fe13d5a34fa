#!/usr/bin/env bash
# Lint: meshtls.h stands alone in every language a service may include it from: strict C99 with
# -pedantic, C11, and C++ (C++11 and later), all warnings errors. Every public function is named
# in the test unit, so a declaration the language rejects cannot hide.
# Usage: check_header.sh INCLUDE_DIRECTORY
set -euo pipefail
include="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

{
  echo '#include <meshtls.h>'
  echo 'typedef void (*any_function)(void);'
  echo 'any_function meshtls_functions[] = {'
  grep -oE '\bmeshtls_[a-z_]+\(' "$include/meshtls.h" | sort -u | tr -d '(' |
    sed 's/.*/    (any_function)\&&,/'
  echo '};'
  echo 'int main(void) { return MESHTLS_WANT_READ == MESHTLS_WANT_WRITE || MESHTLS_SERVER == 0; }'
} > "$work/unit.c"
cp "$work/unit.c" "$work/unit.cpp"

strict=(-Wall -Wextra -Werror -pedantic -I "$include")
cc -std=c99 "${strict[@]}" -c "$work/unit.c" -o "$work/c99.o"
cc -std=c11 "${strict[@]}" -c "$work/unit.c" -o "$work/c11.o"
c++ -std=c++11 "${strict[@]}" -c "$work/unit.cpp" -o "$work/cxx11.o"
c++ -std=c++17 "${strict[@]}" -c "$work/unit.cpp" -o "$work/cxx17.o"
echo "meshtls.h compiles as C99, C11, C++11 and C++17 with -pedantic -Werror ($(grep -c '(any_function)' "$work/unit.c") functions)"
