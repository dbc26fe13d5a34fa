"""An unmodified curl fetches a file from an unmodified `python3 -m http.server`, both under
`meshtls run`, through a recording relay: the body arrives intact, both sides log the peer's
SPIFFE ID, and the wire carries TLS 1.3 records and none of the plaintext."""

import os

from harness import (ASAN_RUNTIME, Mesh, Relay, assert_tls13_wire, check, free_port, http_client, main,
                     random_token)


def test():
    with Mesh("http") as mesh:
        # Identities by attestation of the executable: each log must name the other side.
        mesh.start_agent(config='rules = ( { exe = "/usr/bin/curl"; id = "test/client"; },\n'
                                '          { exe = "/usr/bin/python3*"; id = "test/web"; } );\n')
        server_id = "spiffe://meshtls.local/test/web"
        # Where curl cannot run (see fetch.py) the client is python too, and so is its identity.
        client_id = server_id if ASAN_RUNTIME else "spiffe://meshtls.local/test/client"
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = (f"secret payload {secret}\n" * 2000).encode()  # ~70 KB: several records
        with open(os.path.join(root, "data.txt"), "wb") as f:
            f.write(body)

        port = free_port()
        server = mesh.http_server("server", port, root)
        relay = Relay(port)
        client = mesh.meshed("curl", http_client(f"http://127.0.0.1:{relay.port}/data.txt"))
        status = client.wait(30)
        relay.stop()
        check(status == 0, f"curl exited {status}:\n{client.stderr()}")
        check(client.stdout() == body, f"curl received {len(client.stdout())} bytes, "
                                       f"expected {len(body)} bytes of the file")

        client_log = client.stderr()
        server_log = server.stderr()
        check(f"mtls outbound to 127.0.0.1:{relay.port}: peer {server_id}, TLSv1.3"
              in client_log, f"curl's log does not name the server identity:\n{client_log}")
        check(f"on :{port}: peer {client_id}, TLSv1.3" in server_log,
              f"the server's log does not name the client identity:\n{server_log}")

        check(len(relay.client_bytes) == 1, f"relay saw {len(relay.client_bytes)} connections")
        request_path = b"GET /data.txt"
        records = assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                                    [secret.encode(), request_path, b"HTTP/1.0 200"])
        print(f"curl got {len(body)} bytes over TLS 1.3; wire records client/server: {records}")


if __name__ == "__main__":
    main(test)
