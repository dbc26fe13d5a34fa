"""Lint: the shared objects export exactly what they should, and import no way around libc.

libmeshtls-preload.so: the hooks listed in preload/hooks.def, and meshtls_*.
libmeshtls.so: meshtls_* only. Nothing of wolfSSL, libconfig or the internal mt_* layers leaks.
libmeshtls.so hooks nothing, so it must not look libc's functions up either: neither dlsym nor
dlvsym among its undefined symbols (it calls libc by name, api/libc.c).
Usage: check_symbols.py HOOKS_DEF PRELOAD_SO LIBRARY_SO
"""

import re
import subprocess
import sys


def exported(path):
    output = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                            capture_output=True, text=True).stdout
    names = set()
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TtWDdBbRrVi" and parts[1].isupper():
            names.add(parts[2].split("@")[0])
    # Version nodes appear as absolute symbols, not functions.
    return {name for name in names if not name.startswith("MESHTLS_")}


def imported(path):
    output = subprocess.run(["nm", "-D", "--undefined-only", path], check=True,
                            capture_output=True, text=True).stdout
    return {line.split()[-1].split("@")[0] for line in output.splitlines() if line.strip()}


def main():
    hooks_def, preload, library = sys.argv[1:4]
    with open(hooks_def) as f:
        hooks = set(re.findall(r"^MT_HOOK(?:_OPTIONAL)?\([^,]+,\s*(\w+),", f.read(), re.M))
    failures = []
    preload_symbols = exported(preload)
    api = {name for name in preload_symbols if name.startswith("meshtls_")}
    if not api:
        failures.append("libmeshtls-preload.so exports no meshtls_* function")
    extra = preload_symbols - hooks - api
    missing = hooks - preload_symbols
    if extra:
        failures.append(f"libmeshtls-preload.so leaks {sorted(extra)[:20]}")
    if missing:
        failures.append(f"libmeshtls-preload.so lacks hooks {sorted(missing)}")
    library_symbols = exported(library)
    leaked = {name for name in library_symbols if not name.startswith("meshtls_")}
    if leaked:
        failures.append(f"libmeshtls.so leaks {sorted(leaked)[:20]}")
    lookups = imported(library) & {"dlsym", "dlvsym"}
    if lookups:
        failures.append(f"libmeshtls.so looks symbols up ({', '.join(sorted(lookups))}): it hooks "
                        "nothing and reaches libc by name")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"preload exports {len(hooks)} hooks + {len(api)} meshtls_* functions; "
          f"libmeshtls.so exports {len(library_symbols)} meshtls_* functions")


main()
