"""An unmodified lighttpd serves a file over mTLS to an unmodified curl, both under `meshtls run`.
lighttpd exports its module API from its executable (--export-dynamic), among it its own
config_init and config_read, names libconfig uses too: a preload that imports libconfig by name
has its constructor call lighttpd's functions with libconfig's arguments. Here lighttpd starts,
loads its modules, curl's copy of the file has its sha256 through a recording relay whose bytes are
TLS 1.3 with the file never in clear, lighttpd's access log records the request, and a plaintext
client is refused."""

import os
import socket
import subprocess

from harness import (Mesh, Relay, assert_relay_tls13, check, dumped_on_failure, free_port,
                     http_client, main, random_token, sha256_bytes, skip, start_meshed_server,
                     wait_for, write_random_file)

FILE_SIZE = 300 * 1024 + 77
LIGHTTPD = "/usr/sbin/lighttpd"


def exported_names(path):
    output = subprocess.run(["nm", "-D", "--defined-only", path], check=True,
                            capture_output=True, text=True).stdout
    return {line.split()[-1].split("@")[0] for line in output.splitlines() if line.strip()}


def lighttpd_conf(directory, port):
    return f"""server.document-root = "{directory}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.pid-file = "{directory}/lighttpd.pid"
server.modules += ("mod_accesslog")
accesslog.filename = "{directory}/lighttpd-access.log"
accesslog.format = "%s %b %U"
mimetype.assign = (".bin" => "application/octet-stream")
"""


def plaintext_refused(port, server):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /big.bin HTTP/1.0\r\n\r\n")
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    check(b"HTTP/1." not in received, f"lighttpd answered a plaintext client: {received[:80]!r}")
    wait_for(lambda: "peer did not speak TLS" in server.stderr(), 10,
             "lighttpd's log to show the plaintext client refused")


def test():
    if not os.path.exists(LIGHTTPD):
        skip("lighttpd is not installed (packaging/install-deps.sh installs it)")
    # The point of the test: lighttpd defines names of libconfig's and exports them.
    shared = {"config_init", "config_read"} & exported_names(LIGHTTPD)
    check(shared == {"config_init", "config_read"},
          f"{LIGHTTPD} no longer exports config_init and config_read (found {sorted(shared)}): "
          "this test would prove nothing; pick another server that does")
    with Mesh("lighttpd") as mesh:
        mesh.start_agent()
        www = os.path.join(mesh.dir, "www")
        os.mkdir(www)
        secret = random_token().encode()
        digest = write_random_file(os.path.join(www, "big.bin"), FILE_SIZE, marker=secret)
        port = free_port()
        conf = os.path.join(mesh.dir, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(lighttpd_conf(mesh.dir, port))
        access_log = os.path.join(mesh.dir, "lighttpd-access.log")
        with dumped_on_failure(access_log):
            server = start_meshed_server(mesh, "lighttpd", [LIGHTTPD, "-D", "-f", conf], port)
            relay = Relay(port)
            client = mesh.meshed("curl", http_client(f"http://127.0.0.1:{relay.port}/big.bin"))
            status = client.wait(60)
            body = client.stdout()
            check(status == 0, f"curl exited {status}:\n{client.stderr()}")
            check(len(body) == FILE_SIZE and sha256_bytes(body) == digest,
                  f"curl received {len(body)} bytes (sha256 {sha256_bytes(body)}), "
                  f"expected {FILE_SIZE} (sha256 {digest})")
            check(f"mtls outbound to 127.0.0.1:{relay.port}: peer spiffe://" in client.stderr(),
                  f"curl's connection was not meshed:\n{client.stderr()}")
            assert_relay_tls13(relay, [secret, b"GET /big.bin", b"HTTP/1.1 200"],
                               expected_connections=1)
            plaintext_refused(port, server)
            wait_for(lambda: os.path.exists(access_log) and
                     f"200 {FILE_SIZE} /big.bin" in open(access_log).read(), 10,
                     "lighttpd's access log to record the request")
            check(server.popen.poll() is None, f"lighttpd exited:\n{server.stderr()}")
        print(f"lighttpd (exports {', '.join(sorted(shared))}) served {FILE_SIZE} bytes to curl, "
              "sha256 equal, TLS 1.3 on the wire; plaintext refused")


if __name__ == "__main__":
    main(test)
