"""The policy matrix essentials on IPv6 (::1): every server binds ::1, every client connects to
[::1], the relay listens on ::1.

  - strict (here from inbound.loopback, which covers ::1): an unmodified curl (fetch.py under
    ASan) fetches from `python3 -m http.server --bind ::1`, both meshed, through a relay that
    sees TLS 1.3 and no HTTP in clear; the server names the client's identity;
  - a plaintext client on the strict port is refused with the log line naming [::1]:port, the
    port, the mode and the reason;
  - a permissive rule passes a plaintext client unchanged, terminates a meshed client as mTLS,
    and passes the application's own TLS through;
  - an allow-list rule refuses a disallowed identity during the handshake, naming both IDs and
    inbound.rules[N], and serves an allowed one;
  - outbound rules by IPv6 CIDR: an IPv4 rule (127.0.0.0/8) does not match ::1, the following
    "::1/128" rule does, and its expected identity refuses the server, naming outbound.rules[1].
"""

import os
import socket

from harness import (ASAN_RUNTIME, PYTHON, Mesh, Relay, assert_tls13_wire, check, free_port,
                     http_client, main, random_token)
from policy_common import (copy_python, peer, run, self_signed_certificate, spiffe, start_server,
                           wait_log, write_workload_config)

V6 = socket.AF_INET6
PEER_RE = r"\[::1\]:\d+"


def port6():
    return free_port(V6, "::1")


def test():
    if not os.path.exists("/proc/net/tcp6"):
        raise SystemExit("no IPv6 in this kernel")
    with Mesh("policy-ipv6") as mesh:
        bin_dir = os.path.join(mesh.dir, "bin")
        mesh.start_agent(config=(
            'rules = (\n'
            f'  {{ exe = "{bin_dir}/svc-a"; id = "ns/a/sa/x"; }},\n'
            f'  {{ exe = "{bin_dir}/svc-ab"; id = "ns/ab"; }},\n'
            '  { exe = "/usr/bin/curl"; id = "ns/a/sa/curl"; },\n'
            '  { exe = "/usr/bin/python3*"; id = "ns/server/sa/web"; }\n'
            ');\n'))
        svc_a, svc_ab = copy_python(mesh, "svc-a"), copy_python(mesh, "svc-ab")
        server_id = spiffe("ns/server/sa/web")
        curl_id = server_id if ASAN_RUNTIME else spiffe("ns/a/sa/curl")

        http_port, strict_port, permissive_port, tls_port, allow_port = (port6() for _ in range(5))
        config = write_workload_config(mesh, "workload", f"""
outbound = {{
    loopback = "mtls";
    rules = (
        {{ to = "127.0.0.0/8"; mode = "mtls"; identity = "spiffe://meshtls.local/v4-only/*"; }},
        {{ to = "::1/128"; ports = [{allow_port}]; mode = "mtls";
           identity = "spiffe://meshtls.local/ns/server/*"; }}
    );
}};
inbound = {{
    loopback = "strict";
    rules = (
        {{ port = {permissive_port}; mode = "permissive"; }},
        {{ port = {tls_port}; mode = "permissive"; }},
        {{ port = {allow_port}; mode = "strict"; allow = ["spiffe://meshtls.local/ns/a/*"]; }}
    );
}};
""")
        wrong = write_workload_config(mesh, "expects-other", f"""
outbound = {{
    loopback = "mtls";
    rules = (
        {{ to = "127.0.0.0/8"; mode = "plain"; }},
        {{ to = "::1/128"; mode = "mtls"; identity = "spiffe://meshtls.local/other/*"; }}
    );
}};
""")
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        body = (f"ipv6 payload {secret}\n" * 500).encode()
        with open(os.path.join(root, "data.txt"), "wb") as f:
            f.write(body)
        cert, key = self_signed_certificate(mesh.dir)

        web = start_server(mesh, "http-server",
                           [PYTHON, "-m", "http.server", str(http_port), "--bind", "::1",
                            "--directory", root], [http_port], config=config, family=V6)
        peers = start_server(mesh, "peer-server",
                             peer(PYTHON, "serve", "--host", "::1", "--echo", strict_port,
                                  "--echo", permissive_port, "--tls", tls_port, "--cert", cert,
                                  "--key", key, "--echo", allow_port),
                             [strict_port, permissive_port, tls_port, allow_port], config=config,
                             family=V6)

        # Strict mTLS on ::1 with a real HTTP client, wire checked.
        relay = Relay(http_port, target_host="::1", family=V6, host="::1")
        status, out, err = run(mesh, "mesh-curl",
                               http_client(f"http://[::1]:{relay.port}/data.txt"), config=config)
        relay.stop()
        check(status == 0 and out.encode() == body,
              f"meshed HTTP over ::1 failed ({status}):\n{err}")
        check(f"mtls outbound to [::1]:{relay.port}: peer {server_id}, TLSv1.3" in err,
              f"the client does not name the server:\n{err}")
        wait_log(web, rf"mtls inbound from {PEER_RE} on :{http_port}: peer {curl_id}, TLSv1\.3")
        check(len(relay.client_bytes) == 1, f"relay saw {len(relay.client_bytes)} connections")
        assert_tls13_wire(relay.client_bytes[0], relay.server_bytes[0],
                          [secret.encode(), b"GET /data.txt"])

        # Plaintext to strict: refused, logged.
        status, out, err = run(mesh, "plain-strict", peer(PYTHON, "echo-client", "--host", "::1",
                                                          strict_port, 100), meshed=False)
        check(status != 0 and "ok" not in out, "plaintext got an echo from a strict ::1 port")
        wait_log(peers, rf"warn: refused inbound connection from {PEER_RE} on :{strict_port} "
                        r"\(mode strict\): peer did not speak TLS")
        status, out, err = run(mesh, "plain-http-strict", http_client(
            f"http://[::1]:{http_port}/data.txt"), meshed=False)
        check(status != 0 and secret not in out, "a plaintext HTTP client read the file over ::1")

        # Permissive: plaintext passes unchanged, mesh gets mTLS, the app's own TLS passes.
        status, out, err = run(mesh, "plain-permissive", peer(PYTHON, "echo-client", "--host",
                                                              "::1", permissive_port, 65536),
                               meshed=False)
        check(status == 0 and out.startswith("ok "),
              f"plaintext on permissive ::1 ({status}):\n{err}")
        wait_log(peers, rf"plaintext inbound from {PEER_RE} on :{permissive_port} "
                        r"\(mode permissive\): not TLS")
        status, out, err = run(mesh, "mesh-permissive", peer(svc_a, "echo-client", "--host", "::1",
                                                             permissive_port, 65536), config=config)
        check(status == 0 and out.startswith("ok "), f"mesh on permissive ::1 ({status}):\n{err}")
        wait_log(peers, rf"mtls inbound from {PEER_RE} on :{permissive_port}: peer "
                        rf"{spiffe('ns/a/sa/x')}, TLSv1\.3")
        status, out, err = run(mesh, "app-tls", peer(PYTHON, "tls-client", "--host", "::1",
                                                     tls_port, "--cafile", cert), meshed=False)
        check(status == 0 and "tls-echo hello" in out,
              f"app TLS on permissive ::1 ({status}):\n{err}")
        wait_log(peers, rf"plaintext inbound from {PEER_RE} on :{tls_port} \(mode permissive\): "
                        r"TLS without the mesh mark")

        # Allow list on ::1, with the outbound rule by IPv6 CIDR expecting the real server.
        status, out, err = run(mesh, "allowed", peer(svc_a, "echo-client", "--host", "::1",
                                                     allow_port, 1000), config=config)
        check(status == 0 and out.startswith("ok "), f"ns/a/sa/x refused on ::1 ({status}):\n{err}")
        status, out, err = run(mesh, "disallowed", peer(svc_ab, "echo-client", "--host", "::1",
                                                        allow_port, 1000), config=config)
        check(status != 0 and "ok" not in out, "ns/ab got an echo through ns/a/* on ::1")
        wait_log(peers, rf"refused inbound connection from {PEER_RE} on :{allow_port} "
                        rf"\(mode strict\): client identity {spiffe('ns/ab')} is not in the allow "
                        rf"list of inbound\.rules\[2\] \(we are {server_id}\)")

        # Outbound rule by IPv6 CIDR with an expected identity the server does not have.
        status, out, err = run(mesh, "expects-other", peer(svc_a, "echo-client", "--host", "::1",
                                                           strict_port, 1000), config=wrong)
        check(status != 0 and "ok" not in out, "a client expecting other/* talked to the server")
        expected = (f"refused outbound connection to [::1]:{strict_port} (mode mtls): server "
                    f"identity {server_id} does not match spiffe://meshtls.local/other/* expected "
                    f"by outbound.rules[1] (we are {spiffe('ns/a/sa/x')})")
        check(expected in err, f"expected the line\n  {expected}\nin\n{err}")
        check(peers.popen.poll() is None and web.popen.poll() is None, "a server died")
        print("::1: strict mTLS (TLS 1.3 on the wire), plaintext refused on strict, permissive "
              "passes plaintext and app TLS, allow list and IPv6 outbound rules enforced")


if __name__ == "__main__":
    main(test)
