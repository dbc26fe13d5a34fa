"""An unmodified sockperf server and `sockperf ping-pong --tcp` client measure round-trip latency
over mTLS, both under `meshtls run`: the client's summary reports a latency, a nonzero number of
observations and no dropped, duplicated or out-of-order messages; a second short run through a
recording relay puts only TLS 1.3 records on the wire. Ping-pong is the many-small-messages
pattern: every reply must be readable the moment its record arrives."""

import re

from harness import (Mesh, Relay, assert_relay_tls13, check, free_port, main, run_meshed,
                     start_meshed_server)


def ping_pong(mesh, name, port, seconds):
    status, output, errors = run_meshed(
        mesh, name, ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(port),
                     "-t", str(seconds), "--msg-size", "64"], 60)
    text = re.sub(r"\x1b\[[0-9;]*m", "", output + errors)  # sockperf colours its summary
    check(status == 0, f"sockperf ping-pong exited {status}:\n{text}")
    observations = re.search(r"Total (\d+) observations", text)
    latency = re.search(r"Summary: Latency is ([\d.]+) usec", text)
    losses = re.search(r"# dropped messages = (\d+); # duplicated messages = (\d+); "
                       r"# out-of-order messages = (\d+)", text)
    check(observations and latency and losses, f"sockperf printed no latency summary:\n{text}")
    check(int(observations.group(1)) > 0, f"sockperf made no observation:\n{text}")
    check(losses.groups() == ("0", "0", "0"),
          f"sockperf saw dropped/duplicated/out-of-order messages {losses.groups()}:\n{text}")
    return int(observations.group(1)), float(latency.group(1))


def test():
    with Mesh("sockperf") as mesh:
        mesh.start_agent()
        port = free_port()
        start_meshed_server(mesh, "server",
                            ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)],
                            port)
        observations, latency = ping_pong(mesh, "ping-pong", port, 2)

        relay = Relay(port)
        relayed, _ = ping_pong(mesh, "ping-pong-relayed", relay.port, 1)
        assert_relay_tls13(relay, [], expected_connections=1)
        print(f"sockperf ping-pong: {observations} observations, average {latency} usec; "
              f"relayed run ({relayed} observations) TLS 1.3 on the wire")


if __name__ == "__main__":
    main(test)
