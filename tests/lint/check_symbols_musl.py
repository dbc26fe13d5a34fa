"""Lint: libmeshtls-preload-musl.so exports exactly the hooks musl programs can call and
meshtls_*, and needs nothing but musl's C library.

The hooks are hooks.def as musl-gcc reads it (the glibc-only __*_chk and fcntl64 left out);
nothing of wolfSSL, libconfig or the internal mt_* layers may leak, as from the glibc preload
(check_symbols.py).
Usage: check_symbols_musl.py MUSL_GCC HOOKS_DEF PRELOAD_MUSL_SO
"""

import re
import subprocess
import sys


def musl_hooks(musl_gcc, hooks_def):
    """The names hooks.def lists for a musl build, through musl-gcc's preprocessor."""
    output = subprocess.run([musl_gcc, "-E", "-P", "-include", "features.h",
                             "-DMT_HOOK(type,name,parameters,arguments)=hook name;",
                             "-x", "c", hooks_def],
                            check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"\bhook (\w+);", output))


def main():
    musl_gcc, hooks_def, preload = sys.argv[1:4]
    hooks = musl_hooks(musl_gcc, hooks_def)
    output = subprocess.run(["nm", "-D", "--defined-only", preload], check=True,
                            capture_output=True, text=True).stdout
    exported = {line.split()[-1] for line in output.splitlines()
                if len(line.split()) == 3 and line.split()[1].isupper()}
    api = {name for name in exported if name.startswith("meshtls_")}
    failures = []
    if not api:
        failures.append("exports no meshtls_* function")
    if exported - hooks - api:
        failures.append(f"leaks {sorted(exported - hooks - api)[:20]}")
    if hooks - exported:
        failures.append(f"lacks hooks {sorted(hooks - exported)}")
    if {"__read_chk", "fcntl64"} & hooks:
        failures.append("hooks.def gives musl glibc's own names")
    dynamic = subprocess.run(["readelf", "-d", preload], check=True, capture_output=True,
                             text=True).stdout
    needed = re.findall(r"\(NEEDED\).*\[(.*)\]", dynamic)
    if needed != ["libc.so"]:
        failures.append(f"needs {needed}, not musl's libc.so alone")
    if failures:
        print("\n".join(f"{preload}: {failure}" for failure in failures))
        sys.exit(1)
    print(f"{len(hooks)} hooks and {len(api)} meshtls_* functions exported; needs libc.so")


main()
