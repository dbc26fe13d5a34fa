"""A minimal HTTP client on Python's standard library, standing in for curl where curl cannot
run: under a preloaded AddressSanitizer runtime, Debian 12's curl deadlocks in setlocale() before
doing any I/O (with or without libmeshtls). With a timeout set, Python's sockets use the same
pattern as curl: non-blocking connect, EINPROGRESS, poll() for POLLOUT, getsockopt(SO_ERROR).

Usage: fetch.py URL   — the body on stdout, exit 0; or the error on stderr, exit 1.
"""

import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
        sys.stdout.buffer.write(response.read())
except Exception as error:  # every failure is the test's to judge, with its message
    sys.stderr.write(f"fetch.py: {type(error).__name__}: {error}\n")
    sys.exit(1)
