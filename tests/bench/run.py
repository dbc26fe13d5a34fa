"""Benchmarks libmeshtls against plain TCP and a stunnel mTLS sidecar pair, in one run.

    python3 tests/bench/run.py --build BUILD_DIR [--seconds 5] [--idle-connections 10000]

BUILD_DIR is a configured and compiled meson build (it holds meshtls, meshtls-agent,
libmeshtls-preload.so and tests/bench/{bench_net,wolf_bare}). Needs iperf3, sockperf, stunnel4
and openssl (packaging/install-bench-deps.sh). Everything runs on loopback, each measurement for
a bounded time, and the whole run takes about two minutes.

Three ways to carry the same unmodified programs' traffic are measured side by side:
  plain     the client talks to the server directly;
  stunnel   client -> stunnel (client mode) -> TLS 1.3 mTLS -> stunnel (server) -> server,
            P-256 certificates made here with openssl, the sidecar deployment libmeshtls replaces;
  meshtls   client and server both under `meshtls run`, with a real agent (tests/integration's
            harness), so the connection between them is TLS 1.3 mTLS inside the processes.
and the table prints each figure with its ratios to plain and to stunnel, and the issue's targets.
`wolf_bare` adds the ceiling for handshakes: the same handshake with the same wolfSSL build, both
ends in one process. --json FILE also writes every raw figure.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def fail(message):
    sys.stderr.write(f"run.py: error: {message}\n")
    sys.exit(1)


def parse_arguments():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", required=True, help="meson build directory")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each timed run")
    parser.add_argument("--idle-connections", type=int, default=10000,
                        help="idle meshed connections held by one process")
    parser.add_argument("--stunnel-idle-connections", type=int, default=1000,
                        help="idle connections through the stunnel pair (a thread each)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--only", default="bulk,latency,handshakes,memory,startup",
                        help="comma-separated subset of the measurements")
    return parser.parse_args()


ARGS = parse_arguments()
BUILD = os.path.abspath(ARGS.build)
os.environ["MESHTLS_BUILD_DIR"] = BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (reads MESHTLS_BUILD_DIR at import)

BENCH_NET = os.path.join(BUILD, "tests", "bench", "bench_net")
WOLF_BARE = os.path.join(BUILD, "tests", "bench", "wolf_bare")


def check_tools():
    for path in (harness.MESHTLS, harness.AGENT, BENCH_NET, WOLF_BARE):
        if not os.access(path, os.X_OK):
            fail(f"{path} missing: build with `meson compile -C {ARGS.build}` (option bench=true)")
    for tool in ("iperf3", "sockperf", "stunnel4", "openssl"):
        if shutil.which(tool) is None:
            fail(f"{tool} not found: run packaging/install-bench-deps.sh")


def listening(port):
    """True once something listens on 127.0.0.1:port (read from the kernel, no probe connection,
    which a strict mTLS server would count as a failed peer)."""
    needle = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == needle and fields[3] == "0A":
                return True
    return False


def wait_listening(port, process):
    harness.wait_for(lambda: listening(port) or process.popen.poll() is not None, 20,
                     f"{process.name} to listen on {port}")
    harness.check(process.popen.poll() is None,
                  f"{process.name} exited:\n{process.stderr()[-2000:]}")


def run_output(argv, timeout, env=None):
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                            env=env or harness.base_env())
    if result.returncode != 0:
        raise harness.TestFailure(f"{' '.join(argv)} failed ({result.returncode}):\n"
                                  f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return result.stdout


# ---- the stunnel sidecar pair ------------------------------------------------------------------

def make_certificates(directory):
    """A P-256 CA and two X.509-SVID-shaped leaves (server, client) for stunnel and wolf_bare."""
    def openssl(*arguments):
        subprocess.run(["openssl", *arguments], check=True, capture_output=True, cwd=directory)

    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "ca.key")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bench CA", "-days", "2",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "ca.pem")
    for side in ("server", "client"):
        with open(os.path.join(directory, f"{side}.ext"), "w") as ext:
            ext.write(f"subjectAltName=URI:spiffe://bench.local/{side}\n"
                      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                      "extendedKeyUsage=serverAuth,clientAuth\n")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", f"{side}.key")
        openssl("req", "-new", "-key", f"{side}.key", "-subj", f"/CN={side}", "-out",
                f"{side}.csr")
        openssl("x509", "-req", "-in", f"{side}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{side}.ext", "-out", f"{side}.pem")


class StunnelPair:
    """client stunnel on a plaintext port -> mTLS -> server stunnel -> target port."""

    def __init__(self, mesh, certificates, target_port, name):
        self.port = harness.free_port()
        tls_port = harness.free_port()
        common = ("foreground = yes\npid =\ndebug = 3\nsslVersionMin = TLSv1.3\n"
                  "curves = X25519:P-256\nsocket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n")
        server = (common + f"[server]\naccept = 127.0.0.1:{tls_port}\n"
                  f"connect = 127.0.0.1:{target_port}\n"
                  f"cert = {certificates}/server.pem\nkey = {certificates}/server.key\n"
                  f"CAfile = {certificates}/ca.pem\nverifyChain = yes\n")
        client = (common + f"[client]\nclient = yes\naccept = 127.0.0.1:{self.port}\n"
                  f"connect = 127.0.0.1:{tls_port}\n"
                  f"cert = {certificates}/client.pem\nkey = {certificates}/client.key\n"
                  f"CAfile = {certificates}/ca.pem\nverifyChain = yes\n")
        self.processes = []
        for role, text, port in (("server", server, tls_port), ("client", client, self.port)):
            path = os.path.join(mesh.dir, f"stunnel-{name}-{role}.conf")
            with open(path, "w") as conf:
                conf.write(text)
            process = mesh.spawn(f"stunnel-{name}-{role}", ["stunnel4", path])
            wait_listening(port, process)
            self.processes.append(process)

    def stop(self):
        for process in self.processes:
            process.stop()


# ---- the measurements -----------------------------------------------------------------------------

def start_server(mesh, how, name, argv_for_port):
    """Starts a server for one of plain/stunnel/meshtls; returns (client port, cleanup list)."""
    port = harness.free_port()
    argv = argv_for_port(port)
    process = mesh.meshed(name, argv) if how == "meshtls" else mesh.spawn(name, argv)
    wait_listening(port, process)
    stop = [process]
    if how == "stunnel":
        pair = StunnelPair(mesh, mesh.certificates, port, name)
        return pair.port, stop + pair.processes
    return port, stop


def client(mesh, how, argv, timeout):
    if how == "meshtls":
        argv = [harness.MESHTLS, "run", "--config", mesh.configs["agent"], "--"] + argv
    return run_output(argv, timeout)


def stop_all(processes):
    for process in processes:
        process.stop()


def measure_bulk(mesh, how):
    port, processes = start_server(mesh, how, f"iperf3-{how}",
                                   lambda p: ["iperf3", "-s", "-p", str(p), "-B", "127.0.0.1"])
    try:
        output = client(mesh, how, ["iperf3", "-c", "127.0.0.1", "-p", str(port),
                                    "-t", str(ARGS.seconds), "-J"], ARGS.seconds + 30)
        report = json.loads(output)
        return {"gbit_per_s": report["end"]["sum_received"]["bits_per_second"] / 1e9}
    finally:
        stop_all(processes)


def measure_latency(mesh, how):
    port, processes = start_server(mesh, how, f"sockperf-{how}",
                                   lambda p: ["sockperf", "server", "--tcp", "-i", "127.0.0.1",
                                              "-p", str(p)])
    try:
        output = client(mesh, how, ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1",
                                    "-p", str(port), "-m", "64", "-t", str(int(ARGS.seconds))],
                        ARGS.seconds + 30)
        output = re.sub(r"\x1b\[[0-9;]*m", "", output)
        figures = {}
        for label, key in (("50.000", "p50_us"), ("99.000", "p99_us")):
            match = re.search(rf"percentile {re.escape(label)} =\s*([0-9.]+)", output)
            harness.check(match is not None, f"no percentile {label} in sockperf output:\n{output}")
            figures[key] = float(match.group(1))
        return figures
    finally:
        stop_all(processes)


def measure_handshakes(mesh, how):
    port, processes = start_server(mesh, how, f"echo-{how}",
                                   lambda p: [BENCH_NET, "echo-server", str(p), "2"])
    try:
        output = client(mesh, how, [BENCH_NET, "handshakes", str(port), str(ARGS.seconds), "1"],
                        ARGS.seconds + 60)
        return {"per_second": json.loads(output)["per_second"]}
    finally:
        stop_all(processes)


def measure_bare(certificates):
    c = certificates
    output = run_output([WOLF_BARE, f"{c}/ca.pem", f"{c}/server.pem", f"{c}/server.key",
                         f"{c}/client.pem", f"{c}/client.key", str(ARGS.seconds)],
                        ARGS.seconds + 30)
    return {"per_second": json.loads(output)["per_second"]}


def read_json_lines(process):
    lines = process.stdout().decode(errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def measure_memory(mesh, how, count):
    """One process opening `count` connections (a one-byte round trip each) and holding them."""
    port, processes = start_server(mesh, how, f"hold-{how}",
                                   lambda p: [BENCH_NET, "hold-server", str(p)])
    argv = [BENCH_NET, "idle", str(port), str(count)]
    if how == "meshtls":
        argv = [harness.MESHTLS, "run", "--config", mesh.configs["agent"], "--"] + argv
    sidecars = processes[1:]
    sidecar_rss_before = sum(rss_kib(p.popen.pid) for p in sidecars)
    holder = mesh.spawn(f"idle-{how}", argv, stdin=subprocess.PIPE)
    try:
        harness.wait_for(lambda: read_json_lines(holder) or holder.popen.poll() is not None,
                         count / 50 + 60, f"{count} idle connections ({how})")
        results = read_json_lines(holder)
        harness.check(bool(results), f"idle client failed:\n{holder.stderr()[-2000:]}")
        figures = {"client": results[-1]}
        server_lines = read_json_lines(processes[0])
        if server_lines:
            figures["server"] = server_lines[-1]
        if sidecars:
            figures["sidecar_rss_per_connection"] = (
                (sum(rss_kib(p.popen.pid) for p in sidecars) - sidecar_rss_before) * 1024 / count)
        return figures
    finally:
        holder.popen.stdin.close()
        holder.stop()
        stop_all(processes)


def measure_startup(mesh, how, runs=7):
    """Wall time from starting a client process to the end of its first round trip."""
    port, processes = start_server(mesh, how, f"first-{how}",
                                   lambda p: [BENCH_NET, "echo-server", str(p), "1"])
    try:
        times = []
        for _ in range(runs):
            start = time.monotonic()
            client(mesh, how, [BENCH_NET, "once", str(port)], 30)
            times.append((time.monotonic() - start) * 1000)
        return {"ms": statistics.median(times)}
    finally:
        stop_all(processes)


# ---- the table --------------------------------------------------------------------------------------

def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, digits=2):
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def print_table(results, build_info):
    rows = []

    def row(name, unit, plain, stunnel, mesh, target="", extra=""):
        rows.append([name, unit, fmt(plain), fmt(stunnel), fmt(mesh), fmt(ratio(mesh, plain)),
                     fmt(ratio(mesh, stunnel)), target, extra])

    r = results
    if "bulk" in r:
        row("bulk, iperf3 1 stream", "Gbit/s", r["bulk"]["plain"]["gbit_per_s"],
            r["bulk"]["stunnel"]["gbit_per_s"], r["bulk"]["meshtls"]["gbit_per_s"],
            ">=0.6x plain, >=2x stunnel")
    if "latency" in r:
        for key, name in (("p50_us", "64 B ping-pong p50"), ("p99_us", "64 B ping-pong p99")):
            row(name, "us (half RTT)", r["latency"]["plain"][key], r["latency"]["stunnel"][key],
                r["latency"]["meshtls"][key],
                "<=1.5x plain, < stunnel" if key == "p50_us" else "< stunnel")
    if "handshakes" in r:
        bare = r["handshakes"]["bare"]["per_second"]
        mesh = r["handshakes"]["meshtls"]["per_second"]
        row("new conn + 64 B RTT + close", "conn/s", r["handshakes"]["plain"]["per_second"],
            r["handshakes"]["stunnel"]["per_second"], mesh, ">=0.9x bare wolfSSL",
            f"bare wolfSSL {fmt(bare)}/s; meshtls/bare {fmt(ratio(mesh, bare))}")
    if "memory" in r:
        m = r["memory"]
        mesh_client = m["meshtls"]["client"]
        plain_client = m["plain"]["client"]
        server = m["meshtls"].get("server", {})
        row("heap per idle conn (client)", "bytes", plain_client["heap_per_connection"],
            None, mesh_client["heap_per_connection"], "<=8 KiB",
            f"server side {fmt(server.get('heap_per_connection'))} B")
        row(f"RSS, {mesh_client['connections'] + 1} idle conns", "MiB",
            plain_client["rss_after_kib"] / 1024, None, mesh_client["rss_after_kib"] / 1024,
            "10 000 in one process",
            f"stunnel pair: {fmt(m['stunnel'].get('sidecar_rss_per_connection'))} B RSS/conn "
            f"(over {m['stunnel']['client']['connections'] + 1} conns)")
        row("RSS per idle conn (client)", "bytes", plain_client["rss_per_connection"],
            m["stunnel"].get("sidecar_rss_per_connection"), mesh_client["rss_per_connection"])
    if "startup" in r:
        row("process start -> first RTT done", "ms", r["startup"]["plain"]["ms"],
            r["startup"]["stunnel"]["ms"], r["startup"]["meshtls"]["ms"], "",
            "meshtls includes `meshtls run`, key + CSR + agent")

    header = ["measurement", "unit", "plain", "stunnel", "meshtls", "mesh/plain",
              "mesh/stunnel", "target", "notes"]
    widths = [max(len(str(x[i])) for x in rows + [header]) for i in range(len(header))]
    print(f"\nlibmeshtls benchmark — {build_info}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for line in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths)))


def wolfssl_description():
    try:
        options = subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                                 capture_output=True, text=True, check=True).stdout
        for option in json.loads(options):
            if option["name"] == "wolfssl":
                return f"wolfssl={option['value']}, build {ARGS.build}"
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return f"build {ARGS.build}"


def main():
    check_tools()
    wanted = set(ARGS.only.split(","))
    results = {}
    with harness.Mesh("bench", loopback_mode=("mtls", "strict"), log_level="warn") as mesh:
        mesh.start_agent()
        mesh.certificates = os.path.join(mesh.dir, "certs")
        os.makedirs(mesh.certificates)
        make_certificates(mesh.certificates)
        ways = ("plain", "stunnel", "meshtls")
        steps = [("bulk", measure_bulk), ("latency", measure_latency),
                 ("handshakes", measure_handshakes), ("startup", measure_startup)]
        for name, measure in steps:
            if name not in wanted:
                continue
            results[name] = {}
            for how in ways:
                sys.stderr.write(f"run.py: {name}: {how}\n")
                results[name][how] = measure(mesh, how)
            if name == "handshakes":
                sys.stderr.write("run.py: handshakes: bare wolfSSL in one process\n")
                results[name]["bare"] = measure_bare(mesh.certificates)
        if "memory" in wanted:
            results["memory"] = {}
            for how, count in (("plain", ARGS.idle_connections),
                               ("stunnel", ARGS.stunnel_idle_connections),
                               ("meshtls", ARGS.idle_connections)):
                sys.stderr.write(f"run.py: memory: {how}, {count} idle connections\n")
                results["memory"][how] = measure_memory(mesh, how, count)
    print_table(results, wolfssl_description())
    if ARGS.json:
        with open(ARGS.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
