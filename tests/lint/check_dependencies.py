"""Lint: the shared objects need the C library and nothing else, and import nothing by a name a
program could define.

libmeshtls-preload.so is loaded into programs we did not build. Any library it needs must be in
the program's image (a container image may not have libconfig9), and any unversioned name it
imports is bound to whichever object defines it first: the program itself, when it exports a
function of that name (lighttpd exports config_init and config_read). So, for the preload and for
libmeshtls.so (which programs link directly, with the same exposure):

- NEEDED lists only glibc's own objects: libc.so.6 and the dynamic linker (__tls_get_addr, for
  thread-local variables in a shared object, is the dynamic linker's);
- every undefined dynamic symbol carries a GLIBC_* version, bar the three weak references of the
  toolchain's startup files (gcc's crtstuff), which nothing defines in a normal program;
- no name of libconfig, wolfSSL or libipsec-mb is exported or imported;
- the newest GLIBC_x.y version required, which is the oldest glibc the object loads into, is
  printed with the symbols that require it, and may not exceed MAX_GLIBC.

MAX_GLIBC is 2.34, the lowest a libc-only object can have once it calls dlsym, dladdr or
pthread_once: glibc 2.34 moved libdl and libpthread into libc.so.6, and before that these names
were defined only in libdl.so.2 and libpthread.so.0. Binding them to their older versions would
need those two libraries as NEEDED as well. The next version down is 2.33 (stat, fstat, lstat,
fstatat as functions). 2.34 means Debian 12, Ubuntu 22.04, RHEL 9 and newer.

Usage: check_dependencies.py MAX_GLIBC SHARED_OBJECT...
       check_dependencies.py --skip REASON     (a build these rules do not describe)
"""

import re
import subprocess
import sys

ALLOWED_NEEDED = re.compile(r"^(libc\.so\.6|ld-linux[\w.-]*\.so\.\d+)$")
STARTUP_WEAK = {"__gmon_start__", "_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable"}
DEPENDENCY_NAMES = re.compile(r"^(config_|libconfig_|scanctx_|strbuf_|wolfSSL|wolfssl|wc_|"
                              r"Wolf|WOLF|imb_|aes_gcm_)")


def command(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", command("readelf", "-dW", path))


def dynamic_symbols(path, undefined):
    """(kind, name, version) of each defined or undefined dynamic symbol, from nm -D."""
    option = "--undefined-only" if undefined else "--defined-only"
    symbols = []
    for line in command("nm", "-D", option, path).splitlines():
        parts = line.split()
        if not parts:
            continue
        kind, symbol = parts[-2], parts[-1]
        name, _, version = symbol.partition("@")
        symbols.append((kind, name, version.lstrip("@")))
    return symbols


def version_key(version):
    return tuple(int(part) for part in version.split("."))


def check(path, max_glibc):
    failures = []
    name = path.rsplit("/", 1)[-1]
    extra = [library for library in needed(path) if not ALLOWED_NEEDED.match(library)]
    if extra:
        failures.append(f"{name} needs {extra}: only libc.so.6 and the dynamic linker may be "
                        "needed")
    by_version = {}
    for kind, symbol, version in dynamic_symbols(path, undefined=True):
        if DEPENDENCY_NAMES.match(symbol):
            failures.append(f"{name} imports {symbol}, a name of libconfig or wolfSSL: link "
                            "them in with hidden symbols (packaging/libconfig/build.sh)")
        elif not version:
            if kind == "w" and symbol in STARTUP_WEAK:
                continue
            failures.append(f"{name} imports {symbol} without a version: any object that "
                            "defines the name, the program included, would receive the calls")
        elif not version.startswith("GLIBC_"):
            failures.append(f"{name} imports {symbol}@{version}, which is not glibc's")
        elif re.fullmatch(r"GLIBC_\d+(\.\d+)*", version):
            by_version.setdefault(version[len("GLIBC_"):], []).append(symbol)
    leaked = sorted(symbol for _, symbol, _ in dynamic_symbols(path, undefined=False)
                    if DEPENDENCY_NAMES.match(symbol))
    if leaked:
        failures.append(f"{name} exports {leaked[:10]}, names of libconfig or wolfSSL")
    if not by_version:
        failures.append(f"{name} imports nothing from glibc: is this the right file?")
        return failures
    versions = sorted(by_version, key=version_key)
    newest = versions[-1]
    report = f"{name}: needs {', '.join(needed(path))}; newest GLIBC_{newest} " \
             f"({', '.join(sorted(set(by_version[newest])))})"
    if len(versions) > 1:
        below = versions[-2]
        report += f", then GLIBC_{below} ({', '.join(sorted(set(by_version[below])))})"
    print(report)
    if version_key(newest) > version_key(max_glibc):
        failures.append(f"{name} requires GLIBC_{newest} ({', '.join(sorted(by_version[newest]))})"
                        f", newer than GLIBC_{max_glibc}: it would no longer load into the "
                        "images the README promises; use an older interface")
    return failures


def main():
    if sys.argv[1] == "--skip":
        print(f"SKIP: {sys.argv[2]}")
        sys.exit(77)
    max_glibc, paths = sys.argv[1], sys.argv[2:]
    failures = []
    for path in paths:
        failures += check(path, max_glibc)
    if failures:
        print("\n".join(failures))
        sys.exit(1)


main()
