"""Where the heap of an idle meshed connection goes, by allocation site (heaptrack).

    python3 tests/bench/heap_sites.py --build BUILD_DIR [--connections 2000] [--keep DIR]

Runs the memory measurement of run.py (`bench_net idle N` under `meshtls run`, against a meshed
`bench_net hold-server`, with a real agent) with the client under heaptrack, then lets the
client exit while it still holds its N connections: what heaptrack reports as leaked at exit is
what the idle connections hold (plus the process's one-off state, which the first connection
pays). Prints the leaked bytes and allocations per connection by allocation site (the innermost
frame outside the allocator wrappers), and heaptrack_print's merged leak report for details.
Needs heaptrack (packaging/install-bench-deps.sh installs valgrind; heaptrack is `apt-get
install heaptrack`).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--build", required=True, help="meson build directory")
parser.add_argument("--connections", type=int, default=2000)
parser.add_argument("--keep", help="copy the heaptrack data file here")
parser.add_argument("--lines", type=int, default=25, help="sites to print")
ARGS = parser.parse_args()
os.environ["MESHTLS_BUILD_DIR"] = os.path.abspath(ARGS.build)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

BENCH_NET = os.path.join(os.path.abspath(ARGS.build), "tests", "bench", "bench_net")
# Frames that only forward to malloc: the site is the first frame below them.
WRAPPERS = re.compile(r"^(wolfSSL_Malloc|wolfSSL_Realloc|malloc|calloc|realloc|"
                      r"InitSSL_Side|<unresolved function>)$")


def parse_leaks(text):
    """heaptrack_print -l (unmerged): blocks '<bytes> leaked over <n> calls from' + frames."""
    sites = {}
    blocks = re.split(r"\n(?=\S.* leaked over \d+ calls from)", text)
    for block in blocks:
        header = re.match(r"(\S+) leaked over (\d+) calls from", block)
        if header is None:
            continue
        frames = re.findall(r"^\s+(\S[^\n]*)$", block[header.end():], re.M)
        names = [f.strip() for f in frames if not f.startswith(("at ", "in "))]
        chain = [n for n in names if not WRAPPERS.match(n)]
        site = " <- ".join(chain[:3]) if chain else "?"
        size = parse_size(header.group(1))
        entry = sites.setdefault(site, [0, 0])
        entry[0] += size
        entry[1] += int(header.group(2))
    return sites


def parse_size(text):
    match = re.match(r"([0-9.]+)([KMG]?)B?", text)
    scale = {"": 1, "K": 1000, "M": 1000**2, "G": 1000**3}[match.group(2)]
    return float(match.group(1)) * scale


def main():
    if shutil.which("heaptrack") is None:
        sys.exit("heap_sites.py: heaptrack not found (apt-get install heaptrack)")
    count = ARGS.connections
    with harness.Mesh("heap", loopback_mode=("mtls", "strict"), log_level="warn") as mesh:
        mesh.start_agent()
        port = harness.free_port()
        server = mesh.meshed("hold", [BENCH_NET, "hold-server", str(port)])
        harness.wait_for(lambda: harness.port_listening(port), 20, "hold-server")
        data = os.path.join(mesh.dir, "idle.heaptrack")
        client = mesh.meshed("idle", ["heaptrack", "-o", data, BENCH_NET, "idle", str(port),
                                      str(count)], stdin=subprocess.PIPE)
        harness.wait_for(lambda: b'"client"' in client.stdout() or client.popen.poll()
                         is not None, count / 20 + 120, "idle connections")
        line = [x for x in client.stdout().decode().splitlines() if x.startswith("{")]
        harness.check(bool(line), f"idle client failed:\n{client.stderr()[-3000:]}")
        client.popen.stdin.close()
        client.wait(120)
        server.stop()
        files = [f for f in os.listdir(mesh.dir) if f.startswith("idle.heaptrack")]
        harness.check(bool(files), f"no heaptrack data:\n{client.stderr()[-3000:]}")
        path = os.path.join(mesh.dir, files[0])
        if ARGS.keep:
            shutil.copy(path, ARGS.keep)
        leaks = subprocess.run(["heaptrack_print", "-f", path, "-l", "1", "-p", "0", "-a", "0",
                                "-T", "0", "-m", "0", "-n", "100000", "-s", "100000"],
                               capture_output=True, text=True, check=True).stdout
    print(line[-1])
    sites = parse_leaks(leaks)
    total = sum(v[0] for v in sites.values())
    print(f"\nleaked at exit with {count} connections held: {total / count:,.0f} B per connection "
          f"(requested sizes, without malloc's own overhead of ~8-16 B per block)")
    print(f"{'B/conn':>8} {'allocs/conn':>11}  site (innermost frames)")
    for site, (size, calls) in sorted(sites.items(), key=lambda kv: -kv[1][0])[:ARGS.lines]:
        print(f"{size / count:8.0f} {calls / count:11.2f}  {site}")


if __name__ == "__main__":
    main()
