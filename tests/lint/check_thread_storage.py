"""Lint: the shared objects' thread-local storage stays small.

A shared object's thread-local block (its PT_TLS segment) is allocated and zeroed by the dynamic
linker at every process start and by the C library in every thread the program creates; for
libmeshtls-preload.so that is every process and every thread of every meshed program, most of
which never use it. On these paravirtualized machines each page it touches is a page fault at
start. A buffer the library needs only now and then belongs on the heap while it is used (the
detection window of core/conn.c is one), not in thread-local storage.

Usage: check_thread_storage.py MAX_BYTES SHARED_OBJECT...
"""

import subprocess
import sys


def thread_storage_bytes(path):
    """The memory size of the PT_TLS segment, 0 without one."""
    headers = subprocess.run(["readelf", "-lW", path], check=True, capture_output=True,
                             text=True).stdout
    for line in headers.splitlines():
        fields = line.split()
        if fields and fields[0] == "TLS":
            # Type Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
            return int(fields[5], 16)
    return 0


def main():
    limit, paths = int(sys.argv[1]), sys.argv[2:]
    failures = []
    for path in paths:
        name = path.rsplit("/", 1)[-1]
        size = thread_storage_bytes(path)
        print(f"{name}: {size} bytes of thread-local storage (at most {limit})")
        if size > limit:
            failures.append(f"{name} has {size} bytes of thread-local storage, more than {limit}: "
                            "every thread of every program it is loaded into pays for it; put "
                            "large buffers on the heap while they are used")
    if failures:
        print("\n".join(failures))
        sys.exit(1)


main()
