"""Lint: the shared objects export exactly what they should, and import no way around libc.

libmeshtls-preload.so: the hooks listed in preload/hooks.def, and meshtls_*.
libmeshtls.so: meshtls_* only, each named once in include/meshtls.map and bound to that node's
version (MESHTLS_0, MESHTLS_0.2, ...), and each declared in meshtls.h. Nothing of wolfSSL,
libconfig or the internal mt_* layers leaks.
libmeshtls.so hooks nothing, so it must not look libc's functions up either: neither dlsym nor
dlvsym among its undefined symbols (it calls libc by name, api/libc.c).
Usage: check_symbols.py HOOKS_DEF PRELOAD_SO LIBRARY_SO MESHTLS_MAP MESHTLS_H
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


def versioned(path):
    """name -> version node of each function path defines (the default version, @@)."""
    output = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                            capture_output=True, text=True).stdout
    versions = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and "@@" in parts[2]:
            name, node = parts[2].split("@@")
            versions[name] = node
    return versions


def map_nodes(path):
    """name -> node, from a version script; a name listed twice, or a wildcard, is an error."""
    with open(path) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    names = {}
    failures = []
    for node, body in re.findall(r"(MESHTLS_[\d.]+)\s*\{(.*?)\}", text, re.S):
        exported = body.split("local:")[0].replace("global:", "")
        for name in re.findall(r"[^\s;]+", exported):
            if "*" in name:
                failures.append(f"{path}: {node} exports by wildcard ({name}): name each symbol")
            elif name in names:
                failures.append(f"{path}: {name} is in {names[name]} and {node}")
            else:
                names[name] = node
    return names, failures


def imported(path):
    output = subprocess.run(["nm", "-D", "--undefined-only", path], check=True,
                            capture_output=True, text=True).stdout
    return {line.split()[-1].split("@")[0] for line in output.splitlines() if line.strip()}


def main():
    hooks_def, preload, library, version_script, header = sys.argv[1:6]
    with open(hooks_def) as f:
        hooks = set(re.findall(r"^MT_HOOK(?:_OPTIONAL|_NOT_MUSL)?\([^,]+,\s*(\w+),", f.read(), re.M))
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
    mapped, map_failures = map_nodes(version_script)
    failures += map_failures
    bound = versioned(library)
    for name in sorted(library_symbols | set(mapped)):
        if name not in mapped:
            failures.append(f"libmeshtls.so exports {name}, which meshtls.map does not list")
        elif name not in library_symbols:
            failures.append(f"meshtls.map lists {name}, which libmeshtls.so does not export")
        elif bound.get(name) != mapped[name]:
            failures.append(f"libmeshtls.so binds {name} to {bound.get(name)}, not {mapped[name]}")
    with open(header) as f:
        declared = set(re.findall(r"\b(meshtls_\w+)\(", f.read()))
    undeclared = library_symbols - declared
    if undeclared:
        failures.append(f"meshtls.h does not declare {sorted(undeclared)}")
    lookups = imported(library) & {"dlsym", "dlvsym"}
    if lookups:
        failures.append(f"libmeshtls.so looks symbols up ({', '.join(sorted(lookups))}): it hooks "
                        "nothing and reaches libc by name")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"preload exports {len(hooks)} hooks + {len(api)} meshtls_* functions; "
          f"libmeshtls.so exports {len(library_symbols)} meshtls_* functions in "
          f"{len(set(mapped.values()))} version nodes")


main()
