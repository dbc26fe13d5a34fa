"""Attacks on the agent's metrics (hostile files, squatted file names), for the attack suite.

Each function starts its own agent (with a metrics endpoint) in the suite's Mesh and returns a
Verdict (see test_attacks.py):

metrics_amplification  uid 65534 writes hostile metrics files: a full-size file (16 MiB, every
    chunk full of series, ~53 500 of them) with peer identities of 255 double quotes (escaping
    doubles them) and a ~4 KB executable path made of quotes, and a second one grown to 1 GiB.
    With the fix they get their files from the agent (the only way in); against an agent that
    lets processes create their own files they write them in the directory. The agent is scraped
    several times while its peak RSS (VmHWM) is watched.
      refused  the agent's peak RSS grows by less than 64 MiB over the scrapes, every scrape is
               complete and valid (prometheus_client and promtool) and still shows the honest
               processes' exact series, and no hostile process shows more than the per-process
               series limit;
      logged   the agent names the hostile pid and what it left out;
      counted  meshtls_agent_metrics_series_dropped_total moves by at least what one scrape of
               the full-size file leaves out.
    (To spare the machine, an agent whose RSS passes 1 GiB is killed: that is a failure too.)

metrics_squat  uid 65534 predicts a victim's metrics file name (<pid>-<start time>.metrics) and
    tries to take it first in the metrics directory: a directory of that name (which even a root
    victim cannot remove), a file, a symbolic link. Then the meshed victim connects.
      refused  nothing could be created in the directory, and the victim's connection shows in
               the metrics and in `meshtls status`;
      logged   the agent logs the victim's metrics file, named by its attested pid;
      counted  tcp_open_total of the victim's pid shows its one connection.

metrics_directory_swap  whoever can write the socket's directory (a read-write hostPath) renames
    the agent's metrics directory and puts a symbolic link in its place, to a directory standing
    in for the agent's state (a key, and a file named like an exited process's metrics file);
    a file of another name is in the real metrics directory. Sweeps run before and after.
      refused  after two sweeps past the swap every canary is still there: the agent sweeps the
               directory it holds open (a dead process's file put there is removed), never the
               link's target, and never a name it did not give;
      logged   the agent warns that its metrics directory was moved or replaced;
      counted  no counter (the agent acts on nothing at the new path; the warning is once).

Run alone (python3 attacks_metrics.py [squat|amplification|swap ...], with MESHTLS_BUILD_DIR) for
these verdicts without the rest of the suite.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
import time

from harness import PYTHON, Mesh, TestFailure, base_env, check, free_port, main, port_listening, \
    wait_for
from lifecycle_common import (ECHO_SERVER_SCRIPT, EchoPair, parse_metrics, promtool_check,
                              start_agent, status_records)
from attack_verdicts import NOBODY, Metrics, Verdict, log_line

RSS_GROWTH_MAX_KB = 64 * 1024
RSS_KILL_KB = 1024 * 1024
SCRAPES = 3
# What one scrape of the full-size file leaves out: every published series but the 257 whose
# 255-byte peer identities fit the 64 KiB label budget (metrics/layout.h).
SERIES_PER_CHUNK = (65536 - 64) // 312
FULL_FILE_SERIES = 256 * SERIES_PER_CHUNK
DROPPED_PER_SCRAPE_MIN = FULL_FILE_SERIES - 1024

# Run as uid 65534: get a metrics file (from the agent, or by creating it where an older agent
# lets processes create their own), fill it with the hostile layout, then exec a copy of sleep
# whose path is ~4 KB of quotes, so that /proc/<pid>/exe (the exe label) is that path.
HOSTILE_SCRIPT = r'''
import os, socket, struct, sys
sock_path, metrics_dir, mode, exe = sys.argv[1:5]
def start_time():
    text = open("/proc/self/stat").read()
    return int(text[text.rindex(")") + 2:].split()[19])
def from_agent():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(b"MT\x01\x08\x00\x00\x00\x00")
    data, fds = b"", []
    while len(data) < 8 or len(data) < 8 + struct.unpack("!I", data[4:8])[0]:
        chunk, got, _, _ = socket.recv_fds(s, 65536, 4)
        if not chunk:
            break
        data += chunk
        fds += got
    s.close()
    if len(data) >= 4 and data[3] == 9 and fds:
        return fds[0], "agent"
    for fd in fds:
        os.close(fd)
    return None, data[8:].decode(errors="replace")
fd, how = from_agent()
if fd is None:
    name = os.path.join(metrics_dir, f"{os.getpid()}-{start_time()}.metrics")
    fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.fchmod(fd, 0o644)
    how = "created " + name
# metrics/layout.h, layout version 4: a header, then chunks of series records.
HEADER, CHUNK, CHUNKS, RECORD = 4096, 65536, 256, 312
per_chunk = (CHUNK - 64) // RECORD
header = bytearray(HEADER)
struct.pack_into("<8sIIIIiIQq", header, 0, b"MTMETRIC", 4, HEADER, CHUNK, CHUNKS, os.getpid(),
                 os.geteuid(), start_time(), 0)
os.pwrite(fd, bytes(header), 0)
for c in range(CHUNKS):
    chunk = bytearray(CHUNK)
    struct.pack_into("<IIII", chunk, 0, 1, RECORD, per_chunk, per_chunk)
    for r in range(per_chunk):
        offset = 64 + r * RECORD
        port = (c * per_chunk + r) % 65536
        struct.pack_into("<BBHI", chunk, offset, 1, 1, port, 0)
        chunk[offset + 8:offset + 8 + 255] = b'"' * 255
        struct.pack_into("<QQQQQQ", chunk, offset + 264, 1, 0, 0, 0, 1, 0)
    os.pwrite(fd, bytes(chunk), HEADER + c * CHUNK)
if mode == "oversized":
    os.ftruncate(fd, 1 << 30)
print(f"ready {os.getpid()} {how}", flush=True)
os.execv(exe, [exe, "600"])
'''

SQUAT_SCRIPT = r'''
import os, sys
metrics_dir, name = sys.argv[1:3]
path = os.path.join(metrics_dir, name)
results = []
def create(target):
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
for label, attempt in (("directory", lambda: os.mkdir(path, 0o755)),
                       ("file", lambda: create(path)),
                       ("symlink", lambda: os.symlink("/dev/null", path)),
                       ("other file", lambda: create(os.path.join(metrics_dir, "planted")))):
    try:
        attempt()
        results.append(f"{label}:created")
    except OSError as error:
        results.append(f"{label}:{error.strerror}")
print(" ".join(results), flush=True)
'''

# The victim waits for the go file before its first connection: nothing meshed happens before.
VICTIM_SCRIPT = r'''
import os, socket, sys, time
port, go, stop = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while not os.path.exists(go):
    time.sleep(0.05)
s = socket.create_connection(("127.0.0.1", port), timeout=20)
s.sendall(b"hello victim\n")
data = b""
while len(data) < 13:
    chunk = s.recv(100)
    if not chunk:
        break
    data += chunk
print("connected" if data == b"hello victim\n" else f"failed {data!r}", flush=True)
while not os.path.exists(stop):
    time.sleep(0.05)
s.close()
'''


def write_script(mesh, name, text):
    path = os.path.join(mesh.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def start_time_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return int(text[text.rindex(")") + 2:].split()[19])


def memory_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise TestFailure(f"no {field} for pid {pid}")


def quoted_exe(mesh):
    """A copy of sleep at a path of ~4 KB of double quotes (PATH_MAX is 4096)."""
    directory = os.path.join(mesh.dir, "q")
    for _ in range(15):
        directory = os.path.join(directory, '"' * 250)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    exe = os.path.join(directory, "s")
    shutil.copy2(shutil.which("sleep"), exe)
    os.chmod(exe, 0o755)
    part = os.path.join(mesh.dir, "q")
    for root, dirs, _ in os.walk(part):
        os.chmod(root, 0o755)
    return exe


def scrape_raw(port, timeout=30):
    """(status, body text or error) of one scrape, never raising."""
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                    timeout=timeout) as response:
            return response.status, response.read().decode()
    except Exception as error:  # noqa: BLE001 - any failure of the scrape is the finding
        return None, f"{type(error).__name__}: {error}"


class RssWatch:
    """Samples the agent's VmRSS; kills it past RSS_KILL_KB so an unbounded agent cannot take
    the machine down with it."""

    def __init__(self, process):
        self.process = process
        self.peak = 0
        self.killed = False
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        pid = self.process.popen.pid
        while not self.stopping and self.process.popen.poll() is None:
            try:
                rss = memory_kb(pid, "VmRSS")
            except (OSError, TestFailure):
                return
            self.peak = max(self.peak, rss)
            if rss > RSS_KILL_KB:
                self.killed = True
                self.process.popen.kill()
                return
            time.sleep(0.05)

    def stop(self):
        self.stopping = True
        self.thread.join(5)


def run_as_nobody(mesh, name, argv):
    """A process of uid/gid 65534 (no supplementary groups), output in mesh.dir/name.out."""
    out = open(os.path.join(mesh.dir, f"{name}.out"), "wb")
    err = open(os.path.join(mesh.dir, f"{name}.err"), "wb")
    process = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                               user=NOBODY, group=NOBODY, extra_groups=[], cwd="/",
                               env=dict(base_env(), HOME="/"))
    process.out_path, process.err_path = out.name, err.name
    process.files = (out, err)
    return process


def output_of(process):
    for f in process.files:
        f.flush()
    with open(process.out_path, errors="replace") as f:
        out = f.read()
    with open(process.err_path, errors="replace") as f:
        return out, f.read()


def stop_nobody(process):
    if process.poll() is None:
        process.kill()
    process.wait(10)
    for f in process.files:
        f.close()


def samples_of(samples, name, **labels):
    return [(dict(l), v) for (n, l), v in samples.items()
            if n == name and all(dict(l).get(k) == str(w) for k, w in labels.items())]


def metrics_amplification(mesh):
    verdict = Verdict("20 uid 65534 writes hostile metrics files to bloat the agent")
    name = "amp-agent"
    hostiles = []
    watch = None
    echo = None
    try:
        sock, port = start_agent(mesh, ["--lifetime", "3600"], name=name, metrics=True)
        agent = [p for p in mesh.processes if p.name == name][-1]
        metrics_dir = os.path.join(os.path.dirname(sock), "metrics")
        os.chmod(mesh.dir, 0o711)  # the socket's directories must be traversable by 65534
        echo = EchoPair(mesh, free_port(), agent=name)
        wait_for(lambda: echo.counts()[0] >= 3 or echo.client.popen.poll() is not None, 30,
                 "the honest echo client's round trips")
        check(echo.counts()[0] >= 3, f"the honest echo client failed: {echo.counts()[1]}\n"
                                     f"{echo.client.stderr()[-2000:]}")
        status, text = scrape_raw(port)
        check(status == 200, f"the first scrape failed: {text[:300]}")
        baseline = memory_kb(agent.popen.pid, "VmHWM")
        dropped_before = Metrics.total(parse_metrics(text),
                                       "meshtls_agent_metrics_series_dropped_total")

        script = write_script(mesh, "hostile_metrics.py", HOSTILE_SCRIPT)
        exe = quoted_exe(mesh)
        for mode in ("full", "oversized"):
            hostiles.append(run_as_nobody(mesh, f"hostile-{mode}",
                                          [PYTHON, script, sock, metrics_dir, mode, exe]))
        ready = {}

        def all_ready():
            for hostile in hostiles:
                out, _ = output_of(hostile)
                if out.startswith("ready "):
                    ready[hostile.pid] = out.split("\n")[0]
            return len(ready) == len(hostiles) or any(h.poll() is not None for h in hostiles)
        wait_for(all_ready, 60, "the hostile writers")
        for hostile in hostiles:
            check(hostile.pid in ready, f"hostile writer {hostile.pid} failed: "
                                        f"{output_of(hostile)[1][-2000:]}")
        verdict.evidence.append("hostile writers: " + "; ".join(ready.values()))
        # The exec to the long path has happened once /proc/<pid>/exe names it.
        wait_for(lambda: all(os.readlink(f"/proc/{h.pid}/exe") == exe for h in hostiles), 20,
                 "the hostile writers to exec the quoted path")

        watch = RssWatch(agent)
        bodies = []
        for n in range(SCRAPES):
            started = time.monotonic()
            status, body = scrape_raw(port)
            took = time.monotonic() - started
            verdict.judge("refused", status == 200,
                          f"scrape {n + 1} failed after {took:.1f}s: {body[:300]}"
                          + (" (the agent passed 1 GiB RSS and was killed)" if watch.killed
                             else ""))
            if status != 200:
                break
            bodies.append(body)
        watch.stop()
        hwm = memory_kb(agent.popen.pid, "VmHWM") if agent.popen.poll() is None else watch.peak
        growth = hwm - baseline
        verdict.evidence.append(f"agent VmHWM {baseline} kB before, {hwm} kB after {SCRAPES} "
                                f"scrapes (+{growth} kB), {len(bodies[-1]) if bodies else 0} "
                                "bytes per scrape")
        verdict.judge("refused", growth < RSS_GROWTH_MAX_KB and not watch.killed,
                      f"the agent's peak RSS grew by {growth} kB (limit {RSS_GROWTH_MAX_KB} kB)")
        if not bodies:
            raise TestFailure("no scrape succeeded")

        samples = parse_metrics(bodies[-1])
        promtool = promtool_check(bodies[-1])
        if promtool is not None:
            status_code, output = promtool
            findings = [line for line in output.splitlines() if line.strip()]
            verdict.judge("refused", status_code == 0 or (status_code == 3 and all(
                line.startswith("identity_cert_refresh_count ") for line in findings)),
                f"promtool check metrics: {output[:500]}")
        client_pid, server_pid = echo.client.popen.pid, echo.server.popen.pid
        for pid, direction in ((client_pid, "outbound"), (server_pid, "inbound")):
            opened = Metrics.total(samples, "tcp_open_total", pid=pid, direction=direction)
            now_open = Metrics.total(samples, "tcp_open_connections", pid=pid, direction=direction)
            verdict.judge("refused", opened == 1 and now_open == 1,
                          f"the honest {direction} side (pid {pid}) shows tcp_open_total "
                          f"{opened} and tcp_open_connections {now_open}, expected 1 and 1")
        for hostile in hostiles:
            shown = len(samples_of(samples, "tcp_open_total", pid=hostile.pid))
            verdict.evidence.append(f"pid {hostile.pid}: {shown} tcp_open_total series shown")
            verdict.judge("refused", shown <= 1024,
                          f"hostile pid {hostile.pid} shows {shown} series (limit 1024)")

        full = hostiles[0].pid
        line = log_line(agent, rf"warn: metrics of pid {full} uid {NOBODY} exe .*: \d+ series "
                               r"beyond the per-process limits")
        verdict.evidence.append(f"agent: {line[:200] if line else None}")
        verdict.judge("logged", line is not None,
                      f"the agent did not name pid {full} and what it left out:\n"
                      f"{agent.stderr()[-1500:]}")
        dropped = Metrics.total(samples, "meshtls_agent_metrics_series_dropped_total") - \
            dropped_before
        verdict.evidence.append(f"meshtls_agent_metrics_series_dropped_total +{dropped}")
        verdict.judge("counted", dropped >= DROPPED_PER_SCRAPE_MIN,
                      f"meshtls_agent_metrics_series_dropped_total moved by {dropped}, expected "
                      f"at least {DROPPED_PER_SCRAPE_MIN}")
    except (TestFailure, OSError, ValueError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        if watch is not None:
            watch.stop()
        for hostile in hostiles:
            stop_nobody(hostile)
        if echo is not None:
            try:
                echo.stop()
            except TestFailure:
                pass
        os.chmod(mesh.dir, 0o700)
    return verdict


def metrics_squat(mesh):
    verdict = Verdict("21 uid 65534 squats a victim's metrics file name")
    name = "squat-agent"
    squatter = None
    stop = os.path.join(mesh.dir, "victim.stop")
    try:
        sock, port = start_agent(mesh, ["--lifetime", "3600"], name=name, metrics=True)
        agent = [p for p in mesh.processes if p.name == name][-1]
        metrics_dir = os.path.join(os.path.dirname(sock), "metrics")
        os.chmod(mesh.dir, 0o711)
        server_port = free_port()
        echo_script = write_script(mesh, "squat_echo.py", ECHO_SERVER_SCRIPT)
        server = mesh.meshed("squat-echo", [PYTHON, echo_script, str(server_port)], agent=name)
        wait_for(lambda: port_listening(server_port) or server.popen.poll() is not None, 20,
                 "the echo server to listen")
        go = os.path.join(mesh.dir, "victim.go")
        victim_script = write_script(mesh, "victim.py", VICTIM_SCRIPT)
        victim = mesh.meshed("victim", [PYTHON, victim_script, str(server_port), go, stop],
                             agent=name)
        pid = victim.popen.pid
        wait_for(lambda: victim.popen.poll() is not None or
                 os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith("python"), 20,
                 "the victim to start")
        victim_file = f"{pid}-{start_time_of(pid)}.metrics"

        squat_script = write_script(mesh, "squat.py", SQUAT_SCRIPT)
        squatter = run_as_nobody(mesh, "squatter", [PYTHON, squat_script, metrics_dir,
                                                    victim_file])
        squatter.wait(30)
        attempts = output_of(squatter)[0].strip()
        verdict.evidence.append(f"squatter on {victim_file}: {attempts}")
        verdict.judge("refused", attempts and "created" not in attempts,
                      f"uid {NOBODY} could create in the metrics directory: {attempts} "
                      f"{output_of(squatter)[1][-500:]}")

        open(go, "w").close()
        wait_for(lambda: "connected" in victim.stdout().decode(errors="replace") or
                 victim.popen.poll() is not None, 30, "the victim's connection")
        check("connected" in victim.stdout().decode(errors="replace"),
              f"the victim did not connect:\n{victim.stderr()[-2000:]}")

        samples = {}

        def counted():
            samples.update(Metrics(port).read())
            return Metrics.total(samples, "tcp_open_total", pid=pid, direction="outbound") >= 1
        try:
            wait_for(counted, 5, "the victim's connection in the metrics")
        except TestFailure:
            pass
        opened = Metrics.total(samples, "tcp_open_total", pid=pid, direction="outbound")
        verdict.evidence.append(f"tcp_open_total{{pid={pid},direction=outbound}} {opened}")
        verdict.judge("counted", opened == 1,
                      f"the victim's connection is not in the metrics (tcp_open_total {opened}):"
                      f"\n{victim.stderr()[-1000:]}")
        verdict.judge("refused", opened == 1, "the victim's connection vanished from the metrics")

        records = status_records(sock)
        listed = [r for r in records if r[0] == "process" and int(r[1]) == pid]
        connections = [r for r in records if r[0] == "connection" and int(r[1]) == pid]
        verdict.evidence.append(f"STATUS for pid {pid}: {listed} {connections}")
        verdict.judge("refused", listed and listed[0][7] == "1" and len(connections) == 1,
                      f"`meshtls status` does not show the victim with its connection: "
                      f"{listed} {connections}")

        pattern = (rf"info: gave pid {pid} uid 0 exe \S+ its metrics file "
                   rf"\S+/{re.escape(victim_file)}")
        line = log_line(agent, pattern)
        verdict.evidence.append(f"agent: {line}")
        verdict.judge("logged", line is not None, f"no agent line matching {pattern!r}")
    except (TestFailure, OSError, ValueError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        open(stop, "w").close()
        if squatter is not None:
            stop_nobody(squatter)
        os.chmod(mesh.dir, 0o700)
    return verdict


# The agent sweeps every MT_SERVER_SWEEP_MS (10 s, agent/server.h): a sweep is seen when a file
# named like an exited process's (a pid above any pid_max) disappears.
SWEEP_WAIT_SECONDS = 30
DEAD_PID = 999999990


def swept(path, timeout=SWEEP_WAIT_SECONDS):
    """Puts a dead process's metrics file at path (a name the agent gives, owned by the agent's
    uid) and waits for a sweep to remove it; False when none did in time."""
    with open(path, "w") as f:
        f.write("dead process\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.lexists(path):
            return True
        time.sleep(0.2)
    return False


def metrics_directory_swap(mesh):
    verdict = Verdict("31 the metrics directory is swapped for a symbolic link under the agent",
                      no_counter=True,
                      note="no counter: nothing is done at the new path; the agent warns once")
    name = "swap-agent"
    metrics_dir = moved = None
    try:
        sock, _ = start_agent(mesh, ["--lifetime", "3600"], name=name)
        agent = [p for p in mesh.processes if p.name == name][-1]
        metrics_dir = os.path.join(os.path.dirname(sock), "metrics")
        moved = metrics_dir + ".moved"
        target = os.path.join(mesh.dir, "swap-state")
        os.makedirs(target, mode=0o700)
        canaries = [os.path.join(target, "ca.key"),
                    os.path.join(target, f"{DEAD_PID}-1.metrics"),
                    os.path.join(moved, "notes.txt")]
        for path in canaries[:2] + [os.path.join(metrics_dir, "notes.txt")]:
            with open(path, "w") as f:
                f.write("canary\n")
        before = swept(os.path.join(metrics_dir, f"{DEAD_PID + 1}-1.metrics"))
        verdict.evidence.append(f"a sweep ran before the swap: {before}")
        os.rename(metrics_dir, moved)
        os.symlink(target, metrics_dir)
        after = [swept(os.path.join(moved, f"{DEAD_PID + n}-1.metrics")) for n in (2, 3)]
        verdict.evidence.append(f"sweeps of the held directory after the swap: {after}")
        check(agent.popen.poll() is None, f"the agent exited:\n{agent.stderr()[-1500:]}")
        missing = [path for path in canaries if not os.path.lexists(path)]
        verdict.judge("refused", not missing and all(after),
                      f"after the swap, the agent removed {missing}; sweeps of the directory "
                      f"it created seen: {after}")
        line = log_line(agent, r"warn: metrics directory .* was moved or replaced", timeout=10)
        verdict.evidence.append(f"agent: {line[:200] if line else None}")
        verdict.judge("logged", line is not None,
                      f"the agent did not say its metrics directory was replaced:\n"
                      f"{agent.stderr()[-1500:]}")
    except (TestFailure, OSError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        if metrics_dir is not None and os.path.islink(metrics_dir) and os.path.isdir(moved):
            os.unlink(metrics_dir)
            os.rename(moved, metrics_dir)
    return verdict




if __name__ == "__main__":
    def run_alone():
        with Mesh("attacks-metrics") as mesh:
            chosen = sys.argv[1:] or ["squat", "amplification", "swap"]
            attacks = {"squat": metrics_squat, "amplification": metrics_amplification,
                       "swap": metrics_directory_swap}
            verdicts = [attacks[name](mesh) for name in chosen]
            for verdict in verdicts:
                verdict.finish()
                print(f"{'ok  ' if verdict.as_expected() else 'FAIL'} refused={verdict.refused} "
                      f"logged={verdict.logged} counted={verdict.counted}  {verdict.name}")
                for line in verdict.evidence + verdict.problems:
                    print(f"       {line}")
            check(all(v.as_expected() for v in verdicts), "an attack was not refused, logged "
                                                          "and counted as expected")
    main(run_alone)
