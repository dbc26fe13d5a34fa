"""Benchmarks libmeshtls against plain TCP and a stunnel mTLS sidecar pair, in one run.

    python3 tests/bench/run.py --build BUILD_DIR [--seconds 5] [--repeat 3]
                               [--idle-connections 10000]

BUILD_DIR is a configured and compiled meson build (it holds meshtls, meshtls-agent,
libmeshtls-preload.so and tests/bench/{bench_net,wolf_bare}). Needs iperf3, sockperf, stunnel4
and openssl (packaging/install-bench-deps.sh). Everything runs on loopback, each measurement for
a bounded time, and the whole run takes about three minutes.

Three ways to carry the same unmodified programs' traffic are measured side by side:
  plain     the client talks to the server directly;
  stunnel   client -> stunnel (client mode) -> TLS 1.3 mTLS -> stunnel (server) -> server,
            P-256 certificates made here with openssl, the sidecar deployment libmeshtls replaces;
  meshtls   client and server both under `meshtls run`, with a real agent (tests/integration's
            harness), so the connection between them is TLS 1.3 mTLS inside the processes.
and the table prints each figure with its ratios to plain and to stunnel, and the issue's targets.
`wolf_bare` adds the ceiling for handshakes: the same handshake with the same wolfSSL build called
directly, a server process and a client process over TCP on loopback, as the meshed pair runs.
The supervisor rows (tests/bench/supervisor_rows.py) run a statically linked client, which no
preload can enter, under `meshtls run` (the seccomp supervisor) against the same three columns.
Handshakes are measured three times: full ones (meshtls with resumption_s = 0, stunnel with
sessionResume = no), with TLS 1.3 resumption (each side's default), and full ones with the
classical key exchange (post_quantum = "off", wolf_bare --classical) against the default's
post-quantum hybrid X25519MLKEM768 (stunnel's OpenSSL 3.0 has no ML-KEM: X25519 in every row).

Bulk and handshake figures are medians of --repeat rounds that interleave the columns (plain,
stunnel, meshtls, plain, stunnel, meshtls, ...), so that a slow patch of a shared machine hits
every column alike; the notes give each column's spread (min-max). --json FILE also writes every
raw figure.
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
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="duration of each timed run (handshake runs take half of it)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="interleaved rounds of the bulk and handshake runs")
    parser.add_argument("--idle-connections", type=int, default=10000,
                        help="idle meshed connections held by one process")
    parser.add_argument("--stunnel-idle-connections", type=int, default=1000,
                        help="idle connections through the stunnel pair (a thread each)")
    parser.add_argument("--json", help="also write the raw figures to this file")
    parser.add_argument("--agent-processes", type=int, default=10000,
                        help="live processes holding an identity for the agent's memory row")
    parser.add_argument("--only",
                        default="bulk,latency,handshakes,nagle,memory,startup,supervisor,agent",
                        help="comma-separated subset of the measurements")
    return parser.parse_args()


ARGS = parse_arguments()
BUILD = os.path.abspath(ARGS.build)
os.environ["MESHTLS_BUILD_DIR"] = BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402  (reads MESHTLS_BUILD_DIR at import)
import agent_rows  # noqa: E402  (the agent at node scale: tests/bench/agent_rows.py)
import nagle  # noqa: E402  (tests/bench/nagle.py: the Nagle-on client row)
import supervisor_rows  # noqa: E402  (tests/bench/supervisor_rows.py: the supervisor path)

BENCH_NET = os.path.join(BUILD, "tests", "bench", "bench_net")
WOLF_BARE = os.path.join(BUILD, "tests", "bench", "wolf_bare")
BENCH_AGENT = os.path.join(BUILD, "tests", "bench", "bench_agent")
PRELOAD = os.path.join(BUILD, "libmeshtls-preload.so")
WAYS = ("plain", "stunnel", "meshtls")


def check_tools():
    for path in (harness.MESHTLS, harness.AGENT, BENCH_NET, WOLF_BARE, BENCH_AGENT):
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
    """client stunnel on a plaintext port -> mTLS -> server stunnel -> target port.

    resume: stunnel's default session resumption (the client keeps the session of its last
    connection, the server issues TLS 1.3 tickets), or sessionResume = no on both sides. Logging
    goes to stderr only: with syslog on and no /dev/log, glibc writes every line to /dev/console,
    which at debug 5 and above costs more than the handshake."""

    def __init__(self, mesh, certificates, target_port, name, resume=True, debug=3):
        self.port = harness.free_port()
        tls_port = harness.free_port()
        common = (f"foreground = yes\npid =\nsyslog = no\ndebug = {debug}\n"
                  "sslVersionMin = TLSv1.3\ncurves = X25519:P-256\n"
                  "socket = l:TCP_NODELAY=1\nsocket = r:TCP_NODELAY=1\n"
                  + ("" if resume else "sessionResume = no\n"))
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

    def resumed(self):
        """(resumed, full) handshakes the client side logged; needs debug 6."""
        log = self.processes[1].stderr()
        return log.count("previous session reused"), log.count("new session negotiated")

    def stop(self):
        for process in self.processes:
            process.stop()


# ---- the measurements -----------------------------------------------------------------------------

def start_server(mesh, how, name, argv_for_port, config=None, resume=True):
    """Starts a server for one of plain/stunnel/meshtls; returns (client port, cleanup list).
    config: the meshtls config file of a meshed server; resume: the stunnel pair's resumption."""
    port = harness.free_port()
    argv = argv_for_port(port)
    process = (mesh.meshed(name, argv, config=config) if how == "meshtls"
               else mesh.spawn(name, argv))
    wait_listening(port, process)
    stop = [process]
    if how == "stunnel":
        pair = StunnelPair(mesh, mesh.certificates, port, name, resume=resume)
        return pair.port, stop + pair.processes
    return port, stop


def client(mesh, how, argv, timeout, config=None):
    if how == "meshtls":
        argv = [harness.MESHTLS, "run", "--config", config or mesh.configs["agent"], "--"] + argv
    return run_output(argv, timeout)


def stop_all(processes):
    for process in processes:
        process.stop()


def interleaved(name, columns, run_once):
    """Runs run_once(column) for each column, ARGS.repeat times over in turn (a, b, c, a, b, c,
    ...); returns {column: [one result per round]}."""
    runs = {column: [] for column in columns}
    for index in range(ARGS.repeat):
        for column in columns:
            sys.stderr.write(f"run.py: {name}: {column} ({index + 1}/{ARGS.repeat})\n")
            runs[column].append(run_once(column))
    return runs


def summary(runs, key):
    """The median of runs[i][key] under key, its spread, and the runs themselves."""
    values = [run[key] for run in runs]
    return {key: statistics.median(values), "min": min(values), "max": max(values), "runs": runs}


def measure_bulk(mesh):
    servers, processes = {}, []
    try:
        for how in WAYS:
            servers[how], started = start_server(
                mesh, how, f"iperf3-{how}",
                lambda p: ["iperf3", "-s", "-p", str(p), "-B", "127.0.0.1"])
            processes += started

        def run_once(how):
            output = client(mesh, how, ["iperf3", "-c", "127.0.0.1", "-p", str(servers[how]),
                                        "-t", str(ARGS.seconds), "-J"], ARGS.seconds + 30)
            report = json.loads(output)
            return {"gbit_per_s": report["end"]["sum_received"]["bits_per_second"] / 1e9}

        runs = interleaved("bulk", WAYS, run_once)
        return {how: summary(runs[how], "gbit_per_s") for how in WAYS}
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


# Handshake columns: (name, how the traffic is carried, resumption). "bare" is wolf_bare over TCP
# (the ceiling), "bare-socketpair" the same handshake with both ends in one process.
HANDSHAKE_COLUMNS = (
    ("plain", "plain", False),
    ("stunnel", "stunnel", False),
    ("meshtls", "meshtls", False),
    ("bare", "bare", False),
    ("stunnel-resume", "stunnel", True),
    ("meshtls-resume", "meshtls", True),
    ("bare-resume", "bare", True),
    ("bare-socketpair", "bare-socketpair", False),
    # post_quantum = "off": the classical key exchange, against the default's hybrid.
    ("meshtls-classical", "meshtls", False),
    ("bare-classical", "bare", False),
)


def meshtls_config(mesh, name, resume, log_level, extra=""):
    """A config for the bench agent: resumption as by default, or resumption_s = 0."""
    extra += "" if resume else "resumption_s = 0;\n"
    saved, mesh.log_level = mesh.log_level, log_level
    try:
        return mesh.write_config(name, mesh.agents["agent"], extra)
    finally:
        mesh.log_level = saved


def has_resumption(mesh):
    """Whether this libmeshtls knows resumption_s. Without it every handshake is a full one (the
    full-handshake column runs with the default config) and the resumption column is left out."""
    path = meshtls_config(mesh, "resumption-probe", False, mesh.log_level)
    check = subprocess.run([harness.MESHTLS, "config", "check", path], capture_output=True,
                           text=True, env=harness.base_env())
    return check.returncode == 0


def has_post_quantum(mesh):
    """Whether this libmeshtls knows post_quantum and its wolfSSL has ML-KEM: only then is there a
    classical column to set against the default."""
    path = meshtls_config(mesh, "post-quantum-probe", True, mesh.log_level,
                          'post_quantum = "off";\n')
    check = subprocess.run([harness.MESHTLS, "config", "check", path], capture_output=True,
                           text=True, env=harness.base_env())
    version = subprocess.run([harness.MESHTLS, "version"], capture_output=True, text=True,
                             env=harness.base_env())
    return check.returncode == 0 and "post-quantum" in version.stdout


def run_bare(certificates, seconds, *flags):
    c = certificates
    output = run_output([WOLF_BARE, *flags, f"{c}/ca.pem", f"{c}/server.pem", f"{c}/server.key",
                         f"{c}/client.pem", f"{c}/client.key", str(seconds)], seconds + 30)
    return json.loads(output)


def resumption_check(mesh, echo_port, meshtls_resumes, seconds=0.5):
    """How many handshakes of a short run resumed, in each stunnel and meshtls configuration, from
    their logs: stunnel at debug 6, libmeshtls at info (the timed runs log only warnings, as a
    line per connection slows both down). {column: {"resumed": N, "full": M}}; a libmeshtls that
    logs neither leaves its columns out."""
    found = {}
    for resume in (False, True):
        name = "stunnel-resume" if resume else "stunnel"
        pair = StunnelPair(mesh, mesh.certificates, echo_port, f"check-{name}", resume=resume,
                           debug=6)
        try:
            run_output([BENCH_NET, "handshakes", str(pair.port), str(seconds), "1"], seconds + 30)
            resumed, full = pair.resumed()
        finally:
            pair.stop()
        found[name] = {"resumed": resumed, "full": full}
    for resume in (False, True) if meshtls_resumes else (False,):
        name = "meshtls-resume" if resume else "meshtls"
        config = meshtls_config(mesh, f"check-{name}", resume or not meshtls_resumes, "info")
        port, processes = start_server(mesh, "meshtls", f"check-{name}", echo_server, config)
        try:
            client(mesh, "meshtls", [BENCH_NET, "handshakes", str(port), str(seconds), "1"],
                   seconds + 60, config)
            lines = [line for line in processes[0].stderr().splitlines()
                     if "mtls inbound from" in line]
        finally:
            stop_all(processes)
        if lines:
            resumed = sum(line.endswith(", resumed") for line in lines)
            found[name] = {"resumed": resumed, "full": len(lines) - resumed}
    return found


def echo_server(port):
    return [BENCH_NET, "echo-server", str(port), "2"]


def measure_handshakes(mesh):
    """new connection, one 64 B round trip, close, one at a time, for ARGS.seconds / 2 per run."""
    seconds = ARGS.seconds / 2
    meshtls_resumes = has_resumption(mesh)
    post_quantum = has_post_quantum(mesh)
    configs = {False: meshtls_config(mesh, "full-handshakes", not meshtls_resumes, "warn"),
               True: mesh.configs["agent"]}
    classical_config = meshtls_config(mesh, "classical-handshakes", not meshtls_resumes, "warn",
                                      'post_quantum = "off";\n')
    columns = [column for column in HANDSHAKE_COLUMNS
               if (meshtls_resumes or column[0] != "meshtls-resume")
               and (post_quantum or not column[0].endswith("-classical"))]
    carried = {name: how for name, how, _ in columns}
    servers = {}  # column -> (port, meshtls config)
    processes = []
    try:
        plain_port, started = start_server(mesh, "plain", "echo-plain", echo_server)
        processes += started
        for name, how, resume in columns:
            if how == "plain":
                servers[name] = (plain_port, None)
            elif how == "stunnel":
                pair = StunnelPair(mesh, mesh.certificates, plain_port, name, resume=resume)
                processes += pair.processes
                servers[name] = (pair.port, None)
            elif how == "meshtls":
                config = classical_config if name.endswith("-classical") else configs[resume]
                port, started = start_server(mesh, how, f"echo-{name}", echo_server, config)
                processes += started
                servers[name] = (port, config)

        def run_once(name):
            if name == "bare":
                return run_bare(mesh.certificates, seconds, "--tcp")
            if name == "bare-resume":
                return run_bare(mesh.certificates, seconds, "--tcp", "--resume")
            if name == "bare-socketpair":
                return run_bare(mesh.certificates, seconds)
            if name == "bare-classical":
                return run_bare(mesh.certificates, seconds, "--tcp", "--classical")
            port, config = servers[name]
            output = client(mesh, carried[name],
                            [BENCH_NET, "handshakes", str(port), str(seconds), "1"],
                            seconds + 60, config)
            return json.loads(output)

        runs = interleaved("handshakes", [name for name, _, _ in columns], run_once)
        results = {name: summary(runs[name], "per_second") for name in runs}
        sys.stderr.write("run.py: handshakes: which handshakes resume (a short run, logging)\n")
        results["resumption_check"] = resumption_check(mesh, plain_port, meshtls_resumes)
        results["meshtls_has_resumption"] = meshtls_resumes
        results["meshtls_has_post_quantum"] = post_quantum
        return results
    finally:
        stop_all(processes)


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
    """Wall time from starting a client process to the end of its first round trip. For meshtls,
    two ways of starting the same client, alternated run by run: under `meshtls run` (what a
    shell user or a cron line types), and with LD_PRELOAD and MESHTLS_CONFIG already in the
    environment (what an injected pod, the container entrypoint's exec and a base image with the
    layer give every process they start): the second has no `meshtls run` exec before it."""
    port, processes = start_server(mesh, how, f"first-{how}",
                                   lambda p: [BENCH_NET, "echo-server", str(p), "1"])
    argv = [BENCH_NET, "once", str(port)]
    preload_env = harness.base_env()
    preload_env["LD_PRELOAD"] = ":".join(
        [x for x in (preload_env.get("LD_PRELOAD"), PRELOAD) if x])
    preload_env["MESHTLS_CONFIG"] = mesh.configs["agent"]
    try:
        times, preload_times = [], []
        for _ in range(runs):
            start = time.monotonic()
            client(mesh, how, argv, 30)
            times.append((time.monotonic() - start) * 1000)
            if how == "meshtls":
                start = time.monotonic()
                run_output(argv, 30, env=preload_env)
                preload_times.append((time.monotonic() - start) * 1000)
        result = {"ms": statistics.median(times)}
        if preload_times:
            result["preload_ms"] = statistics.median(preload_times)
        return result
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


def spread(figures, names):
    """ "plain 1.20-1.31, stunnel ..." from summary() results, for the notes column."""
    if ARGS.repeat < 2:
        return ""
    parts = [f"{label} {fmt(figures[name]['min'])}-{fmt(figures[name]['max'])}"
             for name, label in names if name in figures]
    return f"min-max of {ARGS.repeat} runs: " + ", ".join(parts)


def resumed_share(check, names):
    """ "resumed: stunnel 0 %, meshtls 0 %" from resumption_check() counts, for the notes."""
    parts = []
    for name, label in names:
        counts = check.get(name)
        total = counts["resumed"] + counts["full"] if counts else 0
        if total:
            parts.append(f"{label} {100 * counts['resumed'] / total:.0f} %")
    return "resumed: " + ", ".join(parts) if parts else ""


def handshake_rows(h, row):
    """The two conn/s rows: full handshakes, then with resumption."""
    plain = h["plain"]["per_second"]
    check = h["resumption_check"]

    bare = h["bare"]["per_second"]
    mesh = h["meshtls"]["per_second"]
    notes = [f"bare wolfSSL 2 processes/TCP {fmt(bare)}/s (meshtls/bare {fmt(ratio(mesh, bare))}),"
             f" 1 process/socketpair {fmt(h['bare-socketpair']['per_second'])}/s",
             "stunnel sessionResume = no"
             + (", meshtls resumption_s = 0" if h["meshtls_has_resumption"] else ""),
             "key exchange: meshtls and bare X25519MLKEM768, stunnel X25519"
             if h.get("meshtls_has_post_quantum") else "",
             resumed_share(check, [("stunnel", "stunnel"), ("meshtls", "meshtls")]),
             spread(h, [(name, name) for name in ("plain", "stunnel", "meshtls", "bare")])]
    row("new conn + 64 B RTT + close", "conn/s", plain, h["stunnel"]["per_second"], mesh,
        ">=0.9x bare wolfSSL", "; ".join(note for note in notes if note))

    bare_runs = h["bare-resume"]["runs"]
    bare_resumed = sum(run["resumed"] for run in bare_runs)
    check = dict(check, bare={"resumed": bare_resumed,
                              "full": sum(run["handshakes"] for run in bare_runs) - bare_resumed})
    bare = h["bare-resume"]["per_second"]
    mesh = h["meshtls-resume"]["per_second"] if "meshtls-resume" in h else None
    notes = [f"bare wolfSSL 2 processes/TCP {fmt(bare)}/s (meshtls/bare {fmt(ratio(mesh, bare))})",
             "plain as above; stunnel, meshtls: defaults"
             + ("" if h["meshtls_has_resumption"] else " (this libmeshtls has no resumption)"),
             resumed_share(check, [("stunnel-resume", "stunnel"), ("meshtls-resume", "meshtls"),
                                   ("bare", "bare (timed runs)")]),
             spread(h, [("stunnel-resume", "stunnel"), ("meshtls-resume", "meshtls"),
                        ("bare-resume", "bare")])]
    row("... with resumption", "conn/s", plain, h["stunnel-resume"]["per_second"], mesh,
        ">=0.9x bare wolfSSL", "; ".join(note for note in notes if note))

    if not h.get("meshtls_has_post_quantum"):
        return
    bare = h["bare-classical"]["per_second"]
    mesh = h["meshtls-classical"]["per_second"]
    hybrid = h["meshtls"]["per_second"]
    notes = [f"bare wolfSSL 2 processes/TCP {fmt(bare)}/s (meshtls/bare {fmt(ratio(mesh, bare))})",
             f"hybrid (the row above) / classical: meshtls {fmt(ratio(hybrid, mesh))}, "
             f"bare {fmt(ratio(h['bare']['per_second'], bare))}",
             "plain and stunnel (OpenSSL 3.0: X25519) as above",
             spread(h, [("meshtls-classical", "meshtls"), ("bare-classical", "bare")])]
    row("... classical key exchange", "conn/s", plain, h["stunnel"]["per_second"], mesh,
        "post_quantum = off", "; ".join(note for note in notes if note))


def print_table(results, build_info):
    rows = []

    def row(name, unit, plain, stunnel, mesh, target="", extra=""):
        rows.append([name, unit, fmt(plain), fmt(stunnel), fmt(mesh), fmt(ratio(mesh, plain)),
                     fmt(ratio(mesh, stunnel)), target, extra])

    r = results
    if "bulk" in r:
        row("bulk, iperf3 1 stream", "Gbit/s", r["bulk"]["plain"]["gbit_per_s"],
            r["bulk"]["stunnel"]["gbit_per_s"], r["bulk"]["meshtls"]["gbit_per_s"],
            ">=0.8x plain (VAES; 0.6x without), >=2x stunnel",
            spread(r["bulk"], [(how, how) for how in WAYS]))
    if "latency" in r:
        for key, name in (("p50_us", "64 B ping-pong p50"), ("p99_us", "64 B ping-pong p99")):
            row(name, "us (half RTT)", r["latency"]["plain"][key], r["latency"]["stunnel"][key],
                r["latency"]["meshtls"][key],
                "<=1.2x plain, < stunnel" if key == "p50_us" else "< stunnel")
    if "handshakes" in r:
        handshake_rows(r["handshakes"], row)
    for key, figures in sorted(r.get("nagle", {}).items()):
        row(f"new conns, Nagle-on client (ab {key}, no -k)", "req/s",
            figures["plain"]["per_second"], figures["stunnel"]["per_second"],
            figures["meshtls"]["per_second"], ">=2x stunnel",
            "nginx, 140 B page; " + spread(figures, [(how, how) for how in WAYS]))
    if "memory" in r:
        m = r["memory"]
        mesh_client = m["meshtls"]["client"]
        plain_client = m["plain"]["client"]
        server = m["meshtls"].get("server", {})
        row("heap per idle conn (client)", "bytes", plain_client["heap_per_connection"],
            None, mesh_client["heap_per_connection"], "<=4 KiB",
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
            r["startup"]["stunnel"]["ms"], r["startup"]["meshtls"]["ms"], "<=2x plain",
            "meshtls includes `meshtls run`, key + CSR + agent")
        if "preload_ms" in r["startup"]["meshtls"]:
            row("  the same, LD_PRELOAD set", "ms", r["startup"]["plain"]["ms"],
                r["startup"]["stunnel"]["ms"], r["startup"]["meshtls"]["preload_ms"],
                "<=2x plain", "injected pods, entrypoint, base image: no `meshtls run` exec")
    if "supervisor" in r:
        supervisor_rows.rows(r["supervisor"], row, fmt)
    if "agent" in r:
        agent_rows.agent_rows(r["agent"], row, fmt)

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


def measure_nagle(mesh):
    if not nagle.has_tools():
        raise harness.TestFailure("ab or nginx not found: run packaging/install-bench-deps.sh")
    return nagle.measure(mesh, start_server, client, interleaved, summary, WAYS, ARGS.seconds)


def measure_ways(mesh, name, measure):
    """measure(mesh, how) for each way in turn, for the measurements that are not interleaved."""
    results = {}
    for how in WAYS:
        sys.stderr.write(f"run.py: {name}: {how}\n")
        results[how] = measure(mesh, how)
    return results


def measure_memories(mesh):
    results = {}
    for how, count in (("plain", ARGS.idle_connections),
                       ("stunnel", ARGS.stunnel_idle_connections),
                       ("meshtls", ARGS.idle_connections)):
        sys.stderr.write(f"run.py: memory: {how}, {count} idle connections\n")
        results[how] = measure_memory(mesh, how, count)
    return results


def main():
    check_tools()
    wanted = set(ARGS.only.split(","))
    results = {}
    failed = []
    with harness.Mesh("bench", loopback_mode=("mtls", "strict"), log_level="warn") as mesh:
        mesh.start_agent()
        mesh.certificates = os.path.join(mesh.dir, "certs")
        os.makedirs(mesh.certificates)
        make_certificates(mesh.certificates)
        # Bulk and handshakes interleave their columns themselves.
        steps = [("bulk", measure_bulk),
                 ("latency", lambda m: measure_ways(m, "latency", measure_latency)),
                 ("handshakes", measure_handshakes),
                 ("nagle", measure_nagle),
                 ("startup", lambda m: measure_ways(m, "startup", measure_startup)),
                 ("memory", measure_memories),
                 ("supervisor", lambda m: supervisor_rows.measure(m, sys.modules[__name__],
                                                                  ARGS.seconds, ARGS.repeat)),
                 ("agent", lambda m: agent_rows.measure_agent(
                     m, harness, BUILD, ARGS.seconds, ARGS.repeat, ARGS.agent_processes))]
        for name, measure in steps:
            if name not in wanted:
                continue
            # A measurement that fails leaves its rows out; the others are still printed.
            try:
                results[name] = measure(mesh)
            except (harness.TestFailure, subprocess.TimeoutExpired) as error:
                sys.stderr.write(f"run.py: {name} failed: {error}\n")
                failed.append(name)
    print_table(results, wolfssl_description())
    if ARGS.json:
        with open(ARGS.json, "w") as out:
            json.dump(results, out, indent=2)
    if failed:
        fail(f"no figures for {', '.join(failed)} (see above)")


if __name__ == "__main__":
    main()
