"""skip_ports: a port listed there is never touched, in either direction, even where every other
setting says mTLS.

The workload config says outbound.loopback = "mtls" and inbound.loopback = "strict", has an
outbound rule demanding mTLS to the skipped relay port and an inbound rule making the skipped
server port strict, and lists both ports in skip_ports (as "N" and "N-N" strings; skip_ports is
checked before any rule). Then:

  - a meshed client (curl, or fetch.py under ASan) fetches from a meshed `python3 -m http.server`
    through a recording relay on skipped ports: the relay sees the HTTP request and the file in
    clear, and neither side logs anything about those connections;
  - a meshed raw echo through a relay on skipped ports arrives byte for byte, in clear on the wire;
  - a plaintext client that is not meshed talks to the skipped server port directly;
  - control: on a port that is not skipped, in the same server process, plaintext is refused
    (strict) and a meshed client gets TLS 1.3 on the wire.
"""

import os

from harness import (PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port, http_client, main,
                     random_token)
from policy_common import peer, run, start_server, wait_log, write_workload_config


def test():
    with Mesh("policy-skip") as mesh:
        mesh.start_agent()
        http_port, echo_port, strict_port = free_port(), free_port(), free_port()
        http_relay, echo_relay = Relay(http_port), Relay(echo_port)
        strict_relay = Relay(strict_port)
        skipped = [http_port, echo_port, http_relay.port, echo_relay.port]
        skip_list = ", ".join([f'"{http_port}"', f'"{echo_port}-{echo_port}"',
                               f'"{http_relay.port}"', f'"{echo_relay.port}-{echo_relay.port}"'])
        config = write_workload_config(mesh, "workload", f"""
skip_ports = [{skip_list}];
outbound = {{
    loopback = "mtls";
    rules = ( {{ to = "127.0.0.1"; ports = [{http_relay.port}, {echo_relay.port}];
                mode = "mtls"; }} );
}};
inbound = {{
    loopback = "strict";
    rules = ( {{ port = {http_port}; mode = "strict"; }},
              {{ port = {echo_port}; mode = "strict"; }} );
}};
""")
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = f"skipped port payload {secret}\n".encode()
        with open(os.path.join(root, "data.txt"), "wb") as f:
            f.write(body)
        web = start_server(mesh, "http-server",
                           [PYTHON, "-m", "http.server", str(http_port), "--bind", "127.0.0.1",
                            "--directory", root], [http_port], config=config)
        peers = start_server(mesh, "peer-server",
                             peer(PYTHON, "serve", "--echo", echo_port, "--echo", strict_port),
                             [echo_port, strict_port], config=config)

        # Meshed HTTP client and server on skipped ports: plaintext on the wire.
        status, out, err = run(mesh, "mesh-curl",
                               http_client(f"http://127.0.0.1:{http_relay.port}/data.txt"),
                               config=config)
        http_relay.stop()
        check(status == 0 and out.encode() == body, f"HTTP over skipped ports ({status}):\n{err}")
        up, down = bytes(http_relay.client_bytes[0]), bytes(http_relay.server_bytes[0])
        check(up.startswith(b"GET /data.txt HTTP/1.") and secret.encode() in down,
              f"the relay did not see plaintext HTTP on a skipped port: {up[:40]!r} {down[:40]!r}")

        # Meshed raw echo: byte for byte, in clear.
        marker = secret.encode().hex()
        status, out, err = run(mesh, "mesh-echo",
                               peer(PYTHON, "echo-client", echo_relay.port, 50000, "--prefix",
                                    marker), config=config)
        echo_relay.stop()
        check(status == 0 and out.startswith("ok "), f"echo over skipped ports ({status}):\n{err}")
        check(bytes(echo_relay.client_bytes[0]).startswith(secret.encode()) and
              bytes(echo_relay.server_bytes[0]).endswith(bytes(echo_relay.client_bytes[0])),
              "the relay did not see the echo in clear")

        # A plaintext client that is not meshed, straight to the skipped (rule: strict) port.
        status, out, err = run(mesh, "plain-echo", peer(PYTHON, "echo-client", echo_port, 1000),
                               meshed=False)
        check(status == 0 and out.startswith("ok "),
              f"plaintext to a skipped port ({status}):\n{err}")

        # Nobody logged anything about the skipped ports.
        for process in (web, peers):
            for port in skipped:
                check(f":{port}" not in process.stderr(),
                      f"{process.name} logged about skipped port {port}:\n{process.stderr()}")
        for name in ("mesh-curl", "mesh-echo"):
            log = next(p for p in mesh.processes if p.name == name).stderr()
            check("outbound" not in log, f"{name} logged a meshed connection:\n{log}")

        # Control: the same processes and config on a port that is not skipped.
        status, out, err = run(mesh, "plain-strict", peer(PYTHON, "echo-client", strict_port, 100),
                               meshed=False)
        check(status != 0 and "ok" not in out, "plaintext got through a strict port")
        wait_log(peers, rf"refused inbound connection from 127\.0\.0\.1:\d+ on :{strict_port} "
                        r"\(mode strict\): peer did not speak TLS")
        status, out, err = run(mesh, "mesh-strict", peer(PYTHON, "echo-client", strict_relay.port,
                                                         50000, "--prefix", marker), config=config)
        strict_relay.stop()
        check(status == 0 and out.startswith("ok "),
              f"meshed echo on a strict port ({status}):\n{err}")
        assert_tls13_wire(strict_relay.client_bytes[0], strict_relay.server_bytes[0],
                          [secret.encode()])
        print("skip_ports: HTTP and echo in clear and untouched on skipped ports, plaintext "
              "refused and mTLS on the port that is not skipped")


if __name__ == "__main__":
    main(test)
