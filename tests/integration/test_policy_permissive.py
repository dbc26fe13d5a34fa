"""Permissive ports for a migration, end to end with real programs on IPv4 loopback.

One workload config gives a meshed server process five ports by inbound rules (inbound.loopback is
"strict", so only the rules make anything permissive) and proves:

  (a) a plaintext client that is NOT meshed is passed to the application unchanged: curl (or
      fetch.py under ASan) gets a file from an unmodified `python3 -m http.server`, and a raw echo
      of 64 KiB whose first bytes even look like a TLS record header comes back byte for byte;
  (b) a meshed client on the same permissive port gets mutual TLS: the server logs
      "mtls inbound from ... peer spiffe://...", and a recording relay sees TLS 1.3 with none of
      the HTTP in clear;
  (c) the application's OWN TLS (a python ssl server with a self-signed certificate, and a python
      ssl client that is not meshed and offers no mesh ALPN) passes through untouched: the
      application's handshake completes end to end and the relay sees a ClientHello without
      "meshtls/1";
  (d) a silent plaintext client on a server-speaks-first permissive port gets the greeting within
      ~1 s although detect_timeout_ms is 10 s (the detection grace once the server writes), and a
      meshed client on the same port still gets mTLS;
  (e) plaintext to a STRICT port (rule) is refused, with the log line naming peer, port, mode and
      reason.
"""

import os

from harness import (ASAN_RUNTIME, PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port,
                     http_client, main, random_token)
from policy_common import (copy_python, peer, run, self_signed_certificate, spiffe, start_server,
                           wait_log, write_workload_config, is_tls_client_hello)

PORT_RE = r"127\.0\.0\.1:\d+"


def test():
    with Mesh("policy-permissive") as mesh:
        client_python = os.path.join(mesh.dir, "bin", "client-python")
        mesh.start_agent(config=(
            'rules = (\n'
            f'  {{ exe = "{client_python}"; id = "ns/shop/sa/client"; }},\n'
            '  { exe = "/usr/bin/curl"; id = "ns/shop/sa/curl"; },\n'
            '  { exe = "/usr/bin/python3*"; id = "ns/web/sa/server"; }\n'
            ');\n'))
        copy_python(mesh, "client-python")
        server_id = spiffe("ns/web/sa/server")
        client_id = spiffe("ns/shop/sa/client")
        # Where curl cannot run (see fetch.py) the HTTP client is /usr/bin/python3.
        curl_id = server_id if ASAN_RUNTIME else spiffe("ns/shop/sa/curl")

        http_port, echo_port, greet_port, tls_port, strict_port = (free_port() for _ in range(5))
        config = write_workload_config(mesh, "workload", f"""
detect_timeout_ms = 10000;
outbound = {{ loopback = "mtls"; }};
inbound = {{
    loopback = "strict";
    rules = (
        {{ port = {http_port}; mode = "permissive"; }},
        {{ port = {echo_port}; mode = "permissive"; }},
        {{ port = {greet_port}; mode = "permissive"; }},
        {{ port = {tls_port}; mode = "permissive"; }},
        {{ port = {strict_port}; mode = "strict"; }}
    );
}};
""")
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = (f"permissive payload {secret}\n" * 1000).encode()
        with open(os.path.join(root, "data.txt"), "wb") as f:
            f.write(body)
        cert, key = self_signed_certificate(mesh.dir)

        web = start_server(mesh, "http-server",
                           [PYTHON, "-m", "http.server", str(http_port), "--bind", "127.0.0.1",
                            "--directory", root], [http_port], config=config)
        peers = start_server(mesh, "peer-server",
                             peer(PYTHON, "serve", "--echo", echo_port, "--greeter", greet_port,
                                  "--tls", tls_port, "--cert", cert, "--key", key,
                                  "--echo", strict_port),
                             [echo_port, greet_port, tls_port, strict_port], config=config)

        # (a) plaintext, not meshed: HTTP through the permissive port, unchanged.
        status, out, err = run(mesh, "plain-curl", http_client(
            f"http://127.0.0.1:{http_port}/data.txt"), meshed=False)
        check(status == 0 and out.encode() == body,
              f"plaintext HTTP client on a permissive port: status {status}, "
              f"{len(out)} of {len(body)} bytes:\n{err}")
        wait_log(web, rf"plaintext inbound from {PORT_RE} on :{http_port} \(mode permissive\): "
                      r"not TLS")
        # ... and raw bytes, the first of which look like a TLS handshake record header.
        for name, prefix in (("plain-echo", ""), ("plain-echo-tls-like", "16030100050100ffff00")):
            status, out, err = run(mesh, name, peer(PYTHON, "echo-client", echo_port, 65536,
                                                    "--prefix", prefix), meshed=False)
            check(status == 0 and out.startswith("ok "),
                  f"{name}: bytes changed or lost on a permissive port ({status}):\n{out}{err}")

        # (b) a meshed client on the same port: mTLS, TLS 1.3 on the wire.
        relay = Relay(http_port)
        status, out, err = run(mesh, "mesh-curl",
                               http_client(f"http://127.0.0.1:{relay.port}/data.txt"),
                               config=config)
        relay.stop()
        check(status == 0 and out.encode() == body,
              f"meshed HTTP client on a permissive port: status {status}:\n{err}")
        wait_log(web, rf"mtls inbound from {PORT_RE} on :{http_port}: peer {curl_id}, TLSv1\.3")
        check(f"mtls outbound to 127.0.0.1:{relay.port}: peer {server_id}, TLSv1.3" in err,
              f"the meshed client does not name the server:\n{err}")
        check(len(relay.client_bytes) == 1, f"relay saw {len(relay.client_bytes)} connections")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                          [secret.encode(), b"GET /data.txt"])
        check(is_tls_client_hello(relay.client_bytes[0], b"meshtls/1"),
              "the meshed client's ClientHello does not offer the mesh ALPN")

        status, out, err = run(mesh, "mesh-echo", peer(client_python, "echo-client", echo_port,
                                                       65536), config=config)
        check(status == 0 and out.startswith("ok "), f"meshed echo client ({status}):\n{err}")
        wait_log(peers, rf"mtls inbound from {PORT_RE} on :{echo_port}: peer {client_id}, TLSv1\.3")

        # (c) the application's own TLS passes through untouched.
        relay = Relay(tls_port)
        status, out, err = run(mesh, "app-tls-client",
                               peer(PYTHON, "tls-client", relay.port, "--cafile", cert,
                                    "--alpn", "http/1.1"), meshed=False)
        relay.stop()
        check(status == 0 and out.strip() == "tls TLSv1.3 http/1.1 tls-echo hello over the "
                                             "application's own TLS",
              f"the application's own TLS did not complete through a permissive port "
              f"({status}):\n{out}{err}")
        wait_log(peers, rf"plaintext inbound from {PORT_RE} on :{tls_port} \(mode permissive\): "
                        r"TLS without the mesh mark")
        up = bytes(relay.client_bytes[0])
        check(is_tls_client_hello(up) and b"meshtls/1" not in up,
              "the relay did not see the application's own ClientHello (without the mesh ALPN)")

        # (d) server speaks first: a silent plaintext client gets the greeting within ~1 s.
        status, out, err = run(mesh, "plain-greet", peer(PYTHON, "greet-client", greet_port),
                               meshed=False)
        lines = out.splitlines()
        check(status == 0 and len(lines) == 2 and lines[0].endswith("220 greeter ready") and
              lines[1] == "250 HELO policy",
              f"silent plaintext client on a speak-first permissive port ({status}):\n{out}{err}")
        waited = int(lines[0].split()[1])
        check(waited < 1000, f"the greeting took {waited} ms (detect_timeout_ms is 10000; the "
                             "grace after the server's first write should end detection)")
        wait_log(peers, rf"plaintext inbound from {PORT_RE} on :{greet_port} "
                        r"\(mode permissive\): nothing recognisable before the detection timeout")
        status, out, err = run(mesh, "mesh-greet", peer(client_python, "greet-client", greet_port),
                               config=config)
        check(status == 0 and "220 greeter ready" in out and "250 HELO policy" in out,
              f"meshed client on a speak-first permissive port ({status}):\n{out}{err}")
        wait_log(peers, rf"mtls inbound from {PORT_RE} on :{greet_port}: peer {client_id}")

        # (e) plaintext to a strict port: refused, one line naming peer, port, mode, reason.
        status, out, err = run(mesh, "plain-strict", peer(PYTHON, "echo-client", strict_port, 100),
                               meshed=False)
        check(status != 0 and "ok" not in out,
              f"a plaintext client got an echo from a strict port:\n{out}")
        wait_log(peers, rf"warn: refused inbound connection from {PORT_RE} on :{strict_port} "
                        r"\(mode strict\): peer did not speak TLS")
        check(peers.popen.poll() is None and web.popen.poll() is None, "a server died")
        print(f"permissive: plaintext HTTP and raw bytes unchanged, mesh client mTLS (TLS 1.3 on "
              f"the wire), app TLS passed through, greeting after {waited} ms, strict refused")


if __name__ == "__main__":
    main(test)
