"""Lint: the folders under libmeshtls/ are layers, and the build draws the same picture.

Usage: check_layers.py SOURCE_ROOT

Fails when
  - a file includes a header from a folder its own folder may not use (a lower layer reaching
    up, or two layers beside each other reaching across), or from a folder this table does not
    know (a new folder must be placed here first);
  - a static library mt_<name> in meson.build compiles a file outside libmeshtls/<name>/, or a
    library's name matches no folder;
  - a source file is compiled into two of those libraries;
  - a test compiles a libmeshtls source itself instead of linking its library (except the
    libFuzzer targets of tests/fuzz, which compile parsers for coverage, and tests/fault, which
    builds the preload with the fault-injecting kernel interface).

Each layer lists the folders it may include, its own folder always allowed. The order, lower
first: util → {metrics, config, exec} → policy → tls → identity → core → api → preload, and the
programs agent and cli above what they use.
"""

import pathlib
import re
import sys

LAYERS = {
    "include": set(),  # the public header: includes nothing of ours
    "util": set(),
    "metrics": {"util"},
    "config": {"util"},
    "exec": {"util"},
    "policy": {"util", "config"},
    "tls": {"util"},
    "identity": {"util", "config", "tls"},
    "core": {"util", "metrics", "config", "exec", "policy", "tls", "identity"},
    "api": {"include", "util", "metrics", "config", "exec", "policy", "tls", "identity", "core"},
    "preload": {"include", "util", "metrics", "config", "exec", "policy", "tls", "identity", "core",
                "api"},
    "supervisor": {"include", "util", "metrics", "config", "exec", "policy", "tls", "identity",
                   "core", "api"},
    "agent": {"util", "metrics", "config", "exec", "policy", "tls", "identity"},
    # The admission webhook: JSON and HTTP only, nothing of the TLS engine.
    "injector": {"util"},
    # The CLI prints the version from the public header (MESHTLS_VERSION_*, lint/version).
    "cli": {"include", "util", "metrics", "config", "exec", "policy", "tls", "identity",
            "supervisor"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def include_problems(root):
    library = root / "libmeshtls"
    problems = []
    for path in sorted(library.rglob("*")):
        if path.suffix not in (".c", ".h", ".def") or not path.is_file():
            continue
        folder = path.relative_to(library).parts[0]
        if folder not in LAYERS:
            problems.append(f"{path.relative_to(root)}: folder '{folder}' has no place in the "
                            "layer table of tests/lint/check_layers.py")
            continue
        for included in INCLUDE.findall(path.read_text()):
            target = (path.parent / included).resolve()
            try:
                parts = target.relative_to(library.resolve()).parts
            except ValueError:
                problems.append(f"{path.relative_to(root)}: includes \"{included}\", outside "
                                "libmeshtls/")
                continue
            if len(parts) < 2:
                continue
            other = parts[0]
            if other != folder and other not in LAYERS[folder]:
                problems.append(f"{path.relative_to(root)}: includes \"{included}\": {folder}/ "
                                f"may not use {other}/ (allowed: "
                                f"{', '.join(sorted(LAYERS[folder])) or 'nothing'})")
    return problems


def meson_problems(root):
    text = (root / "meson.build").read_text()
    problems = []
    owner = {}
    for match in re.finditer(r"static_library\('mt_(\w+)',(.*?)\n\s*(?:dependencies|include_directories|pic)\s*:",
                             text, re.S):
        name, body = match.group(1), match.group(2)
        if name not in LAYERS:
            problems.append(f"meson.build: library mt_{name} matches no folder of libmeshtls/")
        for source in re.findall(r"'libmeshtls/([^']+)'", body):
            folder = source.split("/", 1)[0]
            if folder != name:
                problems.append(f"meson.build: mt_{name} compiles libmeshtls/{source}, which "
                                f"belongs to {folder}/")
            if source in owner:
                problems.append(f"meson.build: libmeshtls/{source} is compiled into both "
                                f"mt_{owner[source]} and mt_{name}")
            owner[source] = name
    if not owner:
        problems.append("meson.build: no static_library('mt_<folder>', ...) found: the check "
                        "reads nothing")
    return problems, len(owner)


def test_problems(root):
    problems = []
    for build in sorted((root / "tests").rglob("meson.build")):
        relative = build.relative_to(root)
        if relative.parts[1] in ("fuzz", "fault"):
            continue
        for number, line in enumerate(build.read_text().splitlines(), 1):
            for source in re.findall(r"libmeshtls/[\w/]+\.c\b", line):
                problems.append(f"{relative}:{number}: compiles {source} again; link its "
                                "library instead")
    return problems


def main():
    root = pathlib.Path(sys.argv[1])
    problems = include_problems(root)
    meson, sources = meson_problems(root)
    problems += meson
    problems += test_problems(root)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    print(f"layers hold: {len(LAYERS)} folders, {sources} library sources, each in its folder's "
          "library")
    return 0


if __name__ == "__main__":
    sys.exit(main())
