"""Lint: the version is written once in C, and it is the project's.

meshtls.h's MESHTLS_VERSION_MAJOR/MINOR/PATCH must make meson's project version, and no C file
under libmeshtls/ may spell the version out as text: meshtls_version() and `meshtls version` build
it from those macros, so a second copy would be left behind by the next release.
Usage: check_version.py PROJECT_VERSION MESHTLS_H SOURCE_DIRECTORY
"""

import os
import re
import sys


def main():
    version, header, sources = sys.argv[1:4]
    with open(header) as f:
        text = f.read()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        match = re.search(rf"^#define MESHTLS_VERSION_{part} (\d+)$", text, re.M)
        if match is None:
            sys.exit(f"{header} does not define MESHTLS_VERSION_{part}")
        parts.append(match.group(1))
    failures = []
    if ".".join(parts) != version:
        failures.append(f"{header} says {'.'.join(parts)}, meson.build says {version}")
    # Inside a string literal, not part of a longer dotted number (an address such as 10.0.1.0).
    spelled = re.compile(r'"[^"\n]*(?<![\d.])' + re.escape(version) + r'(?![\d.])[^"\n]*"')
    for directory, _, names in os.walk(sources):
        for name in names:
            if not name.endswith((".c", ".h")):
                continue
            path = os.path.join(directory, name)
            with open(path, errors="replace") as f:
                for number, line in enumerate(f, 1):
                    if spelled.search(line):
                        failures.append(f"{path}:{number}: the version as text: {line.strip()}")
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print(f"version {version}, written once (meshtls.h)")


main()
