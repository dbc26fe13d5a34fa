"""An unmodified nginx (master and one worker, epoll, `sendfile on`) serves a multi-megabyte static
file over mTLS to an unmodified curl and to wrk, all under `meshtls run`: curl's copy has the
file's sha256 (through a recording relay whose bytes are TLS 1.3 with the file never in clear),
wrk completes requests with no socket errors and only 2xx responses, and nginx's access log
shows every response sent in full. This proves the sendfile emulation (offsets, partial sends
on a non-blocking TLS socket) and edge-triggered epoll readiness in a real event-driven server."""

import os
import re

from harness import (Mesh, Relay, assert_relay_tls13, check, dumped_on_failure, free_port,
                     http_client, main, nginx_conf, random_token, run_meshed, sha256_bytes,
                     start_meshed_server, write_random_file)

FILE_SIZE = 6 * 1024 * 1024 + 12345  # not a multiple of any page or record size


UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def parse_wrk(output):
    """Returns (requests, bytes read, socket errors, non-2xx/3xx responses) from wrk's report."""
    match = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+)(B|KB|MB|GB|TB) read", output)
    check(match, f"wrk printed no summary:\n{output}")
    requests = int(match.group(1))
    read = float(match.group(2)) * UNITS[match.group(3)]
    errors = {}
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output)
    if match:
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, match.groups())))
    match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    non_2xx = int(match.group(1)) if match else 0
    return requests, read, errors, non_2xx


def test():
    with Mesh("nginx") as mesh:
        mesh.start_agent()
        www = os.path.join(mesh.dir, "www")
        os.mkdir(www)
        secret = random_token().encode()
        digest = write_random_file(os.path.join(www, "big.bin"), FILE_SIZE, marker=secret)
        port = free_port()
        conf = os.path.join(mesh.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(nginx_conf(
                mesh.dir, f"127.0.0.1:{port}", master=True, error_level="info",
                types="application/octet-stream bin",
                http_extra=("    log_format sizes '$status $body_bytes_sent $request_uri';\n"
                            f"    access_log {mesh.dir}/nginx-access.log sizes;\n"
                            "    sendfile on;\n    keepalive_timeout 30s;\n")))
        error_log = os.path.join(mesh.dir, "nginx-error.log")
        with dumped_on_failure(error_log):
            start_meshed_server(mesh, "nginx",
                                ["nginx", "-p", mesh.dir, "-c", conf, "-e", error_log], port)
            check_curl(mesh, port, digest, secret)
            requests, read = check_wrk(mesh, port)
            complete, short = check_access_log(mesh, requests)
        print(f"curl: {FILE_SIZE} bytes, sha256 equal, TLS 1.3 on the wire; "
              f"wrk: {requests} requests, {read / 2**20:.0f} MiB read, no errors; "
              f"access log: {complete} complete responses, {short} cut short by wrk's stop")


def check_curl(mesh, port, digest, secret):
    """curl through a recording relay: the whole file, byte for byte, and only TLS on the wire."""
    relay = Relay(port)
    client = mesh.meshed("curl", http_client(f"http://127.0.0.1:{relay.port}/big.bin"))
    status = client.wait(60)
    body = client.stdout()
    check(status == 0, f"curl exited {status}:\n{client.stderr()}")
    check(len(body) == FILE_SIZE and sha256_bytes(body) == digest,
          f"curl received {len(body)} bytes (sha256 {sha256_bytes(body)}), "
          f"expected {FILE_SIZE} (sha256 {digest})")
    assert_relay_tls13(relay, [secret, b"GET /big.bin", b"HTTP/1.1 200"],
                       expected_connections=1)


def check_wrk(mesh, port):
    """wrk: four keep-alive connections for three seconds, straight to nginx."""
    status, output, errors = run_meshed(
        mesh, "wrk", ["wrk", "-t1", "-c4", "-d3s", "--timeout", "10s",
                      f"http://127.0.0.1:{port}/big.bin"], timeout=60)
    check(status == 0, f"wrk exited {status}:\n{output}\n{errors}")
    requests, read, socket_errors, non_2xx = parse_wrk(output)
    check(requests > 0, f"wrk completed no request:\n{output}\n{errors}")
    check(not any(socket_errors.values()), f"wrk saw socket errors {socket_errors}:\n{output}")
    check(non_2xx == 0, f"wrk saw {non_2xx} non-2xx responses:\n{output}")
    # wrk rounds the byte count to two decimals of its unit; every completed response carried
    # the whole file.
    check(read >= requests * FILE_SIZE * 0.99,
          f"wrk read {read:.0f} bytes for {requests} responses of {FILE_SIZE} bytes")
    return requests, read


def check_access_log(mesh, requests):
    """nginx logged curl's request and wrk's, each a 200 with the whole file sent, except at
    most one per wrk connection cut short when wrk stopped."""
    with open(os.path.join(mesh.dir, "nginx-access.log")) as f:
        lines = [line.split() for line in f if line.strip()]
    short = [line for line in lines if line[0] != "200" or int(line[1]) != FILE_SIZE]
    check(len(lines) >= requests + 1 and len(short) <= 4,
          f"access log: {len(lines)} requests for {requests + 1} completed by the clients, "
          f"{len(short)} not a complete 200: {short[:8]}")
    return len(lines) - len(short), len(short)


if __name__ == "__main__":
    main(test)
