"""The supervisor path, for run.py's `--only supervisor`.

A statically linked program (bench_net_static: the same bench_net.c, linked with -static) cannot
load the preload; `meshtls run` meshes it through the seccomp supervisor, which holds the mTLS
connection and relays the program's bytes. Each row runs that program as the client against a
server meshed by the preload, and compares it, in the same run and on the same programs, with
plain TCP and with the stunnel sidecar pair:

  bulk         bench_net_static bulk -> bench_net sink-server (what arrived, in Gbit/s)
  latency      bench_net_static latency -> bench_net echo-server (64 B, half RTT)
  new conns    bench_net_static handshakes -> bench_net echo-server (connect, 64 B, close)

The columns interleave (plain, stunnel, supervisor, plain, ...) over --repeat rounds; each row
prints the median. Target (the issue's): at least as fast as the stunnel pair on every row.
"""

import json
import os
import sys

COLUMNS = ("plain", "stunnel", "meshtls")
ROWS = (
    # key, server mode, client argv after PORT, figure, higher is better
    ("bulk", "sink-server", lambda seconds: ["bulk", "{port}", str(seconds)], "gbit_per_s", True),
    ("latency", "echo-server", lambda seconds: ["latency", "{port}", "20000"], "p50_us", False),
    ("new_conns", "echo-server", lambda seconds: ["handshakes", "{port}", str(seconds)],
     "per_second", True),
)


def _last_json(text):
    lines = [line for line in text.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


def measure(mesh, run, seconds, repeat):
    """run: the run module (start_server, client, stop_all); returns {row: {column: summary}}."""
    static = os.path.join(os.path.dirname(run.BENCH_NET), "bench_net_static")
    if not os.path.exists(static):
        raise run.harness.TestFailure(f"{static} not built (a sanitizer build has none)")
    results = {}
    for key, server_mode, client_argv, figure, _ in ROWS:
        rounds = {column: [] for column in COLUMNS}
        for index in range(max(repeat, 1)):
            for column in COLUMNS:
                sys.stderr.write(f"run.py: supervisor {key}: {column} ({index + 1}/{repeat})\n")
                port, processes = run.start_server(
                    mesh, column, f"{key}-{column}",
                    lambda p: [run.BENCH_NET, server_mode, str(p)])
                try:
                    argv = [static] + [a.format(port=port) for a in client_argv(seconds)]
                    output = run.client(mesh, column, argv, seconds + 60)
                    rounds[column].append(_last_json(output))
                finally:
                    run.stop_all(processes)
        results[key] = {column: run.summary(runs, figure) for column, runs in rounds.items()}
    return results


def rows(results, row, fmt):
    names = {"bulk": ("supervised static client: bulk", "Gbit/s"),
             "latency": ("supervised static client: 64 B p50", "us (half RTT)"),
             "new_conns": ("supervised static client: new conns", "conn/s")}
    for key, _, _, figure, higher in ROWS:
        if key not in results:
            continue
        figures = results[key]
        mesh = figures["meshtls"][figure]
        stunnel = figures["stunnel"][figure]
        met = mesh >= stunnel if higher else mesh <= stunnel
        row(names[key][0], names[key][1], figures["plain"][figure], stunnel, mesh,
            ">= stunnel" if higher else "<= stunnel",
            f"{'met' if met else 'NOT met'}; server meshed by the preload; spread "
            + ", ".join(f"{c} {fmt(figures[c]['min'])}-{fmt(figures[c]['max'])}"
                        for c in COLUMNS))
