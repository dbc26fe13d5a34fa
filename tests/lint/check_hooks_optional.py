"""Lint: a hook of a name newer than the oldest glibc supported is MT_HOOK_OPTIONAL, and only such.

preload/hooks.def states the oldest glibc supported ("Oldest glibc supported: 2.28."). A name libc
added later must be MT_HOOK_OPTIONAL, or the preload would refuse to load on that older libc
(preload/real.c aborts when a required name is missing); a name every supported libc has must be
MT_HOOK, so that a missing one is still an error. A name's age is the oldest symbol version libc
defines it under (nm -D --with-symbol-versions of the libc the preload links).
Usage: check_hooks_optional.py HOOKS_DEF PRELOAD_SO
"""

import re
import subprocess
import sys


def version_key(text):
    return tuple(int(part) for part in text.split("."))


def libc_path(preload):
    output = subprocess.run(["ldd", preload], check=True, capture_output=True, text=True).stdout
    for line in output.splitlines():
        match = re.match(r"\s*libc\.so\.\d+ => (\S+)", line)
        if match:
            return match.group(1)
    sys.exit(f"cannot find the libc {preload} links in:\n{output}")


def oldest_versions(libc):
    output = subprocess.run(["nm", "-D", "--defined-only", "--with-symbol-versions", libc],
                            check=True, capture_output=True, text=True).stdout
    oldest = {}
    for line in output.splitlines():
        match = re.search(r" (\w+)@@?GLIBC_([\d.]+)$", line)
        if match:
            name, version = match.group(1), version_key(match.group(2))
            if name not in oldest or version < oldest[name]:
                oldest[name] = version
    return oldest


def main():
    hooks_def, preload = sys.argv[1:3]
    with open(hooks_def) as f:
        text = f.read()
    supported = re.search(r"Oldest glibc supported: ([\d.]+?)\.?\s", text)
    if supported is None:
        sys.exit("hooks.def does not say 'Oldest glibc supported: X.Y.'")
    floor = version_key(supported.group(1))
    hooks = re.findall(r"^(MT_HOOK(?:_OPTIONAL|_NOT_MUSL)?)\([^,]+,\s*(\w+),", text, re.M)
    # MT_HOOK_NOT_MUSL is MT_HOOK for glibc (optional only in the musl build).
    hooks = [("MT_HOOK" if kind == "MT_HOOK_NOT_MUSL" else kind, name) for kind, name in hooks]
    libc = libc_path(preload)
    versions = oldest_versions(libc)
    failures = []
    for kind, name in hooks:
        version = versions.get(name)
        if version is None:
            if kind == "MT_HOOK":
                failures.append(f"{name}: not in {libc}, yet MT_HOOK (required)")
            continue
        shown = ".".join(map(str, version))
        if version > floor and kind == "MT_HOOK":
            failures.append(f"{name}: glibc {shown} is newer than {supported.group(1)}: "
                            "MT_HOOK_OPTIONAL")
        if version <= floor and kind == "MT_HOOK_OPTIONAL":
            failures.append(f"{name}: every supported glibc has it (since {shown}): MT_HOOK")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    optional = [name for kind, name in hooks if kind == "MT_HOOK_OPTIONAL"]
    print(f"{len(hooks)} hooks; newer than glibc {supported.group(1)}, so optional: "
          f"{', '.join(optional)}")


main()
