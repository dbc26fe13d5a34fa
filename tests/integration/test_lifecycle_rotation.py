"""Leaf rotation under continuous traffic: short-lived leaves are renewed lazily by every process
(new connection per request, and one connection held open across every renewal), with zero
failed requests and every leaf renewed.

    test_lifecycle_rotation.py [--duration SECONDS] [--lifetime SECONDS]

The suite runs 40 s with 10 s leaves. The acceptance run is 5 minutes with 60 s leaves:
    MESHTLS_BUILD_DIR=build python3 tests/integration/test_lifecycle_rotation.py \
        --duration 300 --lifetime 60
It prints request counts, renewals per process and request latency (median, p99, max) so that
a renewal's cost on the request that triggers it can be read off.
"""

import argparse
import time

from harness import Mesh, check, free_port, main, wait_for
from lifecycle_common import (EchoPair, TrafficClient, issued_count, log, serve_payload,
                              start_agent)

PAYLOAD = 8192


def percentile(values, fraction):
    return values[min(len(values) - 1, int(len(values) * fraction))] if values else 0.0


def run(duration, lifetime):
    with Mesh("rotation") as mesh:
        start_agent(mesh, ["--lifetime", str(lifetime)])
        agent = mesh.processes[-1]
        port = free_port()
        server = serve_payload(mesh, "server", port, PAYLOAD)
        clients = [TrafficClient(mesh, f"client{i}", port, PAYLOAD, interval=0.05)
                   for i in range(2)]
        echo = EchoPair(mesh, free_port())
        # The echo pair makes no new handshake after its first, so it never needs to renew (lazy
        # renewal): it shows that a live connection outlives the leaves it was opened with.
        processes = [server] + [c.process for c in clients]
        wait_for(lambda: all(c.counts()[0] > 0 for c in clients) and echo.counts()[0] > 0, 30,
                 "traffic to flow")
        started = time.monotonic()
        initial = {p.name: issued_count(agent, p.popen.pid) for p in processes}
        while time.monotonic() - started < duration:
            time.sleep(min(10, duration))
            failures = [f for c in clients for f in c.counts()[1]] + echo.counts()[1]
            check(not failures, f"failed requests: {failures[:5]}")
            log(f"{time.monotonic() - started:.0f}s: "
                f"{sum(c.counts()[0] for c in clients)} requests, "
                f"{echo.counts()[0]} echoes on one connection, 0 failed")
        for client in clients:
            client.stop()
        echo.stop()

        ok = sum(c.counts()[0] for c in clients)
        failures = [f for c in clients for f in c.counts()[1]] + echo.counts()[1]
        check(not failures, f"failed requests: {failures[:5]}")
        # Lazy renewal at 70 %: at least one renewal per lifetime elapsed, for every process.
        expected = max(1, int(duration // lifetime))
        renewals = {p.name: issued_count(agent, p.popen.pid) - initial[p.name] for p in processes}
        for name, count in renewals.items():
            check(count >= expected, f"{name} renewed {count} times in {duration}s of "
                                     f"{lifetime}s leaves (expected at least {expected})")
        check(echo.counts()[0] >= duration * 5,
              f"only {echo.counts()[0]} echoes on the long-lived connection")
        latencies = sorted(l for c in clients for l in c.latencies())
        log(f"rotation: {duration}s, {lifetime}s leaves, {ok} requests + {echo.counts()[0]} echoes "
            f"on one long-lived connection, 0 failed; renewals per process {renewals}; "
            f"request latency median {percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms")


def test():
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=40)
    parser.add_argument("--lifetime", type=int, default=10)
    arguments = parser.parse_args()
    run(arguments.duration, arguments.lifetime)


if __name__ == "__main__":
    main(test)
