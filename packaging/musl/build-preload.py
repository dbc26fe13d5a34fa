#!/usr/bin/env python3
"""Builds libmeshtls-preload-musl.so: the preload's sources compiled and linked with musl-gcc.

meson has one C compiler for the host, so this second build of the same sources (meson.build
passes the lists it builds libmeshtls-preload.so from, in one place) runs here, from a
custom_target. It links the way meson links the glibc preload: the hooks and the API whole, every
other layer from one archive (only the objects they need), wolfSSL and libconfig built for musl
(static, PIC, hidden), the same version script, no undefined symbol but libc's. Then it checks
that the result exports only the hooks and meshtls_*.

Usage: build-preload.py --cc CC --output SO --depfile D --work DIR --version-script MAP
         [--cflag F]... [--include DIR]... [--archive LIB.a]... [--whole SRC]... SRC...
  --whole names the sources linked whole (hooks and API); the others go into the archive.
"""

import argparse
import concurrent.futures
import os
import pathlib
import re
import subprocess
import sys


def parse_arguments():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cc", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--depfile", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--version-script", required=True)
    parser.add_argument("--cflag", action="append", default=[])
    parser.add_argument("--include", action="append", default=[])
    parser.add_argument("--archive", action="append", default=[])
    parser.add_argument("--whole", action="append", default=[])
    parser.add_argument("sources", nargs="+")
    return parser.parse_args()


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"build-preload.py: failed: {' '.join(command)}\n{result.stdout}{result.stderr}")
    return result.stdout


def object_name(work, source):
    """A unique object name per source: its path with the separators flattened."""
    flat = re.sub(r"[^A-Za-z0-9_.]", "_", os.path.relpath(source))
    return os.path.join(work, flat + ".o")


def compile_all(arguments, sources):
    flags = ["-c", "-fPIC"] + arguments.cflag
    flags += [f"-I{directory}" for directory in arguments.include]
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        for source in sources:
            target = object_name(arguments.work, source)
            command = [arguments.cc] + flags + ["-MD", "-MF", target + ".d", source, "-o", target]
            jobs.append(pool.submit(run, command))
        for job in jobs:
            job.result()


def write_depfile(arguments, sources):
    """One rule for the output: every header any source included, from the compiler's .d files."""
    headers = set()
    for source in sources:
        text = pathlib.Path(object_name(arguments.work, source) + ".d").read_text()
        text = text.replace("\\\n", " ")
        headers.update(text.split(":", 1)[1].split())
    names = " ".join(sorted(name.replace(" ", "\\ ") for name in headers))
    pathlib.Path(arguments.depfile).write_text(f"{arguments.output}: {names}\n")


def exported_names(version_script):
    """The names and name* patterns the version script makes global."""
    text = re.sub(r"/\*.*?\*/", "", pathlib.Path(version_script).read_text(), flags=re.S)
    text = text.split("global:", 1)[1].split("local:", 1)[0]
    return [name.strip() for name in text.split(";") if name.strip()]


def check_exports(output, version_script):
    """Only the hooks and meshtls_* may be exported, as from the glibc preload."""
    allowed = exported_names(version_script)
    listing = run(["nm", "-D", "--defined-only", output])
    strays = []
    for line in listing.splitlines():
        name = line.split()[-1]
        if not any(name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1]))
                   for pattern in allowed):
            strays.append(name)
    if strays:
        sys.exit(f"build-preload.py: {output} exports more than the hooks and meshtls_*: "
                 f"{', '.join(strays[:10])}")


def main():
    arguments = parse_arguments()
    os.makedirs(arguments.work, exist_ok=True)
    whole = [os.path.realpath(source) for source in arguments.whole]
    sources = [os.path.realpath(source) for source in arguments.sources]
    compile_all(arguments, whole + sources)
    archive = os.path.join(arguments.work, "libmeshtls-layers.a")
    if os.path.exists(archive):
        os.unlink(archive)
    run(["ar", "rcs", archive] + [object_name(arguments.work, source) for source in sources])
    archives = arguments.archive
    run([arguments.cc, "-shared", "-o", arguments.output]
        + [object_name(arguments.work, source) for source in whole]
        + [archive] + archives
        + [f"-Wl,--version-script={arguments.version_script}", "-Wl,--no-undefined",
           # No archive's symbol is exported: the hooks and the API are linked whole.
           "-Wl,-z,nodelete", "-Wl,--exclude-libs,ALL"])
    check_exports(arguments.output, arguments.version_script)
    write_depfile(arguments, whole + sources)


main()
