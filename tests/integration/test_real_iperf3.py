"""An unmodified iperf3 server and client measure a bounded TCP transfer over mTLS, both under
`meshtls run`: the client's JSON report has no error and counts the bytes sent and received
(a control connection and a data connection, both TLS), the server's own JSON report agrees that
data arrived, and a second, smaller run through a recording relay puts only TLS 1.3 records on
the wire for both connections (the data connection up to where iperf3 resets it at the end of
the test, with or without TLS)."""

import json

from harness import (Mesh, Relay, assert_tls13_wire, assert_tls13_wire_torn_down, check,
                     free_port, main, run_meshed, start_meshed_server, wait_for)

TRANSFER = 64 * 1024 * 1024


def iperf3_run(mesh, name, port, server_port, transfer):
    """Runs one client; returns the parsed client report and the server's (one-off server)."""
    server = start_meshed_server(mesh, f"{name}-server",
                                 ["iperf3", "-s", "-p", str(server_port), "-1", "-J",
                                  "--bind", "127.0.0.1"], server_port)
    status, output, errors = run_meshed(
        mesh, f"{name}-client", ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n",
                                 str(transfer), "-J", "--connect-timeout", "10000"], 60)
    check(status == 0, f"iperf3 client exited {status}:\n{output[-3000:]}\n{errors}")
    client = json.loads(output)
    check("error" not in client, f"iperf3 client reported: {client.get('error')}")
    wait_for(lambda: server.popen.poll() is not None, 20, "the one-off iperf3 server to exit")
    check(server.popen.returncode == 0,
          f"iperf3 server exited {server.popen.returncode}:\n{server.stderr()}")
    report = json.loads(server.stdout())
    check("error" not in report, f"iperf3 server reported: {report.get('error')}")
    return client, report


def test():
    with Mesh("iperf3") as mesh:
        mesh.start_agent()
        port = free_port()
        client, server = iperf3_run(mesh, "direct", port, port, TRANSFER)
        sent = client["end"]["sum_sent"]["bytes"]
        received = client["end"]["sum_received"]["bytes"]
        server_received = server["end"]["sum_received"]["bytes"]
        check(sent >= TRANSFER, f"client sent {sent} bytes, asked for {TRANSFER}")
        check(received > 0 and server_received > 0,
              f"no data arrived: client saw {received}, server saw {server_received}")
        rate = client["end"]["sum_received"]["bits_per_second"] / 1e9

        port = free_port()
        relay = Relay(port)
        iperf3_run(mesh, "relayed", relay.port, port, 16 * 1024 * 1024)
        relay.stop()
        with relay.lock:
            connections = list(zip(relay.client_bytes, relay.server_bytes))
        check(len(connections) == 2, f"relay carried {len(connections)} connections, expected "
                                     f"iperf3's control and data connections")
        # The control connection carries iperf3's JSON parameters. When the test ends, the
        # server stops reading the data connection and resets it, so the relay (like the
        # server, with or without TLS) loses what was in flight: check the whole records.
        assert_tls13_wire(*connections[0], [b'"tcp"', b'"parallel"', b'"omit"'])
        data_bytes, _ = assert_tls13_wire_torn_down(*connections[1], [])
        check(data_bytes >= 1024 * 1024,
              f"only {data_bytes} bytes of whole TLS records on the data connection")
        print(f"iperf3: sent {sent} bytes, client received {received}, server received "
              f"{server_received}, {rate:.2f} Gbit/s; relayed run: TLS 1.3 on both connections "
              f"({data_bytes} bytes of data records)")


if __name__ == "__main__":
    main(test)
