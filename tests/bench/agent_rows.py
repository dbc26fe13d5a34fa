"""The agent at node scale, for run.py's `--only agent` (tests/bench/bench_agent.c does the work).

SVIDs issued per second with 1, 16 and 64 concurrent client processes (each request a fresh
P-256 key and its CSR, sent by the library's own identity client, the reply checked as a
workload checks it), the agent's CPU per SVID (utime + stime of /proc/<agent>/stat over the run),
and the agent's RSS and heap with 0, 1 000 and 10 000 live processes that each hold an identity
and a metrics file. The clients run on the same cores as the agent. There is no plain or stunnel
counterpart for issuing SVIDs: the rows print their own figures against the targets.
"""

import json
import os
import statistics
import sys

CLIENT_COUNTS = (1, 16, 64)
TARGET_SVIDS_PER_S = 2000


def _json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def measure_agent(mesh, harness, build, seconds, repeat, processes):
    """Its own agent, so that neither its 10 000 processes nor the other rows disturb each other."""
    bench = os.path.join(build, "tests", "bench", "bench_agent")
    sock = mesh.start_agent(name="agent-scale")
    agent = next(p for p in mesh.processes if p.name == "agent-scale")
    pid = str(agent.popen.pid)
    rounds = {count: [] for count in CLIENT_COUNTS}
    try:
        # Interleaved, as run.py's other rows: a slow patch of the machine hits every count alike.
        for _ in range(max(repeat, 1)):
            for count in CLIENT_COUNTS:
                sys.stderr.write(f"run.py: agent: {count} client(s)\n")
                runner = mesh.spawn(f"svids-{count}", [bench, "svids", sock, pid, str(count),
                                                       str(seconds)])
                harness.check(runner.wait(seconds + 120) == 0,
                              f"bench_agent svids {count} failed:\n{runner.stderr()[-2000:]}")
                rounds[count].append(_json_lines(runner.stdout().decode())[-1])
        checkpoints = [c for c in (1000,) if c < processes]
        sys.stderr.write(f"run.py: agent: {processes} live processes\n")
        holder = mesh.spawn("hold", [bench, "hold", sock, pid, str(processes)] +
                            [str(c) for c in checkpoints])
        harness.check(holder.wait(900) == 0,
                      f"bench_agent hold failed:\n{holder.stderr()[-2000:]}")
        memory = _json_lines(holder.stdout().decode())
    finally:
        agent.stop()
    svids = {}
    for count, runs in rounds.items():
        rates = [run["svids_per_s"] for run in runs]
        svids[count] = {"svids_per_s": statistics.median(rates), "min": min(rates),
                        "max": max(rates),
                        "agent_cpu_us_per_svid": statistics.median(
                            run["agent_cpu_us_per_svid"] for run in runs),
                        "slowest_ms": max(run["slowest_ms"] for run in runs),
                        "failed": sum(run["failed"] for run in runs), "runs": runs}
    return {"svids": svids, "memory": memory}


def agent_rows(figures, row, fmt):
    """The table's agent rows: SVIDs/s per client count, then memory by live processes."""
    for count, figure in sorted(figures["svids"].items()):
        row(f"agent: SVIDs issued, {count} client(s)", "SVID/s", None, None,
            figure["svids_per_s"], f">={TARGET_SVIDS_PER_S}/s" if count > 1 else "",
            f"no plain/stunnel counterpart; agent CPU {fmt(figure['agent_cpu_us_per_svid'], 0)}"
            f" us/SVID; min-max {fmt(figure['min'], 0)}-{fmt(figure['max'], 0)}; slowest "
            f"{fmt(figure['slowest_ms'], 0)} ms; {figure['failed']} failed")
    idle = [m for m in figures["memory"] if m.get("mode") == "idle"]
    memory = [m for m in figures["memory"] if m.get("mode") == "hold"]
    if not memory:
        return
    first, last = memory[0], memory[-1]
    middle = [m for m in memory[1:-1] if m["live"] > 0]
    slope_from = middle[0] if middle else first
    live = last["live"] - slope_from["live"]
    slope = (last["agent_rss_kib"] - slope_from["agent_rss_kib"]) * 1024 / live if live else None
    heap_slope = ((last["agent_heap_kib"] - slope_from["agent_heap_kib"]) * 1024 / live
                  if live else None)
    steps = ", ".join(f"{m['live']}: {fmt(m['agent_rss_kib'] / 1024)}" for m in
                      [first] + middle)
    row(f"agent RSS, {last['live']} live processes", "MiB", None, None,
        last["agent_rss_kib"] / 1024, "flat per process",
        f"RSS at {steps} MiB; {fmt(slope, 0)} B RSS, {fmt(heap_slope, 0)} B heap per process "
        f"from {slope_from['live']} on; {last['failed']} failed; "
        f"{fmt(last['elapsed_s'], 0)} s to start them"
        + (f"; agent CPU {fmt(idle[0]['agent_cpu_ms'], 0)} ms in {idle[0]['seconds']} s idle"
           if idle else ""))
