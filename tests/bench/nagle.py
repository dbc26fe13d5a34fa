"""The new-connections row with a client that keeps Nagle on: `ab` without keep-alive (HTTP/1.0,
one small page, a new connection per request) against nginx, for plain, the stunnel pair and
meshtls, interleaved. ab does not set TCP_NODELAY; nginx does not either on a connection that is
not kept alive (tcp_nodelay applies to keep-alive ones only). Any small segment libmeshtls sends
of its own just before the application's first bytes (the client's last handshake flight, the
server's session ticket) would make Nagle hold those bytes until the peer's delayed ACK, 40 ms.

Used by run.py (`--only nagle`); needs ab (apache2-utils) and nginx
(packaging/install-bench-deps.sh)."""

import os
import re
import shutil

import harness  # tests/integration, put on the path by run.py

PAGE = b"<html><body>meshtls</body></html>\n" * 4  # 140 bytes, one small response


def has_tools():
    return shutil.which("ab") is not None and shutil.which("nginx") is not None


def parse_ab(output):
    """(requests per second, failed requests) from ab's report."""
    rate = re.search(r"Requests per second:\s+([\d.]+)", output)
    failed = re.search(r"Failed requests:\s+(\d+)", output)
    if rate is None or failed is None:
        raise harness.TestFailure(f"ab printed no summary:\n{output[-2000:]}")
    return float(rate.group(1)), int(failed.group(1))


def measure(mesh, start_server, client, interleaved, summary, ways, seconds,
            concurrencies=(1, 8)):
    """{"c1": {way: summary}, "c8": ...}: requests/s of `ab -c C -t seconds` (no -k) for each
    way; a round with failed requests or non-2xx responses fails the measurement."""
    directory = os.path.join(mesh.dir, "nagle")
    os.makedirs(os.path.join(directory, "www"), exist_ok=True)
    with open(os.path.join(directory, "www", "index.html"), "wb") as page:
        page.write(PAGE)

    def argv_for_port(port):
        path = os.path.join(directory, f"nginx-{port}.conf")
        with open(path, "w") as conf:
            conf.write(harness.nginx_conf(directory, f"127.0.0.1:{port} backlog=1024",
                                         connections=1024,
                                         http_extra="    access_log off;\n"))
        return ["nginx", "-p", directory, "-c", path, "-e",
                os.path.join(directory, "nginx-error.log")]

    ports, processes = {}, []
    try:
        for how in ways:
            ports[how], started = start_server(mesh, how, f"nginx-{how}", argv_for_port)
            processes += started
        results = {}
        for concurrency in concurrencies:
            def run_once(how):
                output = client(mesh, how, ["ab", "-q", "-c", str(concurrency), "-t",
                                            str(seconds), "-n", "1000000",
                                            f"http://127.0.0.1:{ports[how]}/index.html"],
                                seconds + 60)
                rate, failed = parse_ab(output)
                non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", output)
                if failed or non_2xx:
                    raise harness.TestFailure(f"ab through {how}: {failed} failed requests, "
                                     f"{non_2xx.group(1) if non_2xx else 0} non-2xx")
                return {"per_second": rate}
            runs = interleaved(f"nagle c{concurrency}", ways, run_once)
            results[f"c{concurrency}"] = {how: summary(runs[how], "per_second") for how in ways}
        return results
    finally:
        for process in processes:
            process.stop()
