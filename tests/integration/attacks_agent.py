"""Attacks on the node agent by local users, for test_attacks.py.

Each function starts the agent it needs (inside the attack suite's Mesh) and returns one Verdict:

  22 exe rule spoofed from a user + mount namespace: uid 65534 runs `unshare -Urm`, bind-mounts
     python over the path an exe rule names (a program it may not even run), runs it and asks the
     agent for an identity. It must get uid/65534, never the rule's; the agent logs that the
     executable bears the rule's name but is another file, and counts it
     (meshtls_agent_exe_mismatches_total). Control: root running the real program gets the rule.
  23 the same against a sha256 rule: the bind-mounted program has other contents, so no match;
     control: root running the real program matches by its hash.
  23b the same agent's hashing is bounded: uid 65533, which no sha256 rule fits, floods the agent
     with connections and ID requests and costs it no hash; uid 65534, which a sha256 rule fits,
     runs its own 64 MiB program, touched before each run (ctime moves: the cache misses). After
     its budget (256 MiB a minute) its runs are not hashed: they are told "agent busy" and get
     no identity (never uid/65534, which they would hold for a lifetime), the agent says why
     (rate-limited) and counts it (meshtls_agent_exe_hashes_total{result="over_budget"}).
  24 --issuer-dir tls.key readable by others, or owned by another uid: the agent refuses to start
     and says what to do (the secret-volume link layout is followed: a 0400 root-owned target
     behind the kubelet's ..data links is accepted).
  25 one uid starves the agent: uid 65534 holds 300 idle connections (more than the agent's 256
     slots) and reconnects whichever the agent closes; meanwhile uid 65533 runs `meshtls id` 20
     times. All 20 must succeed, the agent's log stays short (rate-limited, with the count of
     lines suppressed), and the evictions are counted
     (meshtls_agent_connections_refused_total{reason="evicted"}).

Users 65534 and 65533 are used through subprocess (user=, group=): nothing is created system-wide.
Every wait is bounded; the starvation attack holds its connections for HOLD_SECONDS.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

from harness import MESHTLS, PYTHON, TestFailure, base_env, check, for_other_users, wait_for
from lifecycle_common import Pki, log, run_agent_to_exit, start_agent
from attack_verdicts import NOBODY, PEERS, Metrics, Verdict, log_line, spiffe

VICTIM = 65533
HOLD_SECONDS = 14
IDLE_CONNECTIONS = 300
VICTIM_CALLS = 20
LOG_LINES_MAX = 100
# 23b: uid 65534's program is a quarter of its hashing budget (agent/hash_budget.h).
HASHED_PROGRAM_BYTES = 64 * 1024 * 1024
BUDGET_BYTES = 256 * 1024 * 1024
OWN_RUNS = 6
FLOOD_CONNECTIONS = 300
FLOOD_REQUESTS = 5

# uid 65533's flood: connections closed at once, without a request.
FLOODER = r'''
import socket, sys
for _ in range(int(sys.argv[2])):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(sys.argv[1])
'''

# uid 65534's connection holder: IDLE_CONNECTIONS connections that never send a byte; whichever
# the agent closes is opened again at once (at most 2000 a second, about the rate of the flood
# the review measured), until the time or the reconnection budget runs out.
HOLDER = r'''
import json, selectors, socket, sys, time
path, count, seconds, ready = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
selector = selectors.DefaultSelector()
stats = {"opened": 0, "closed_by_agent": 0, "connect_failed": 0}
def open_one():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
    except OSError:
        stats["connect_failed"] += 1
        s.close()
        return
    s.setblocking(False)
    selector.register(s, selectors.EVENT_READ)
    stats["opened"] += 1
for _ in range(count):
    open_one()
with open(ready, "w") as f:
    f.write(str(stats["opened"]))
deadline = time.monotonic() + seconds
slice_end, slice_opened = 0.0, 0
while time.monotonic() < deadline:
    now = time.monotonic()
    if now >= slice_end:
        slice_end, slice_opened = now + 0.1, 0
    elif slice_opened >= 200:
        time.sleep(slice_end - now)
        continue
    for key, _ in selector.select(timeout=0.2):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            continue
        selector.unregister(s)
        s.close()
        stats["closed_by_agent"] += 1
        if stats["opened"] < 50000:
            open_one()
            slice_opened += 1
print(json.dumps(stats), flush=True)
'''


def make_csr(directory):
    key = os.path.join(directory, "attacker.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True,
                   timeout=20)
    return subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=attacker",
                           "-outform", "DER"], check=True, capture_output=True,
                          timeout=20).stdout


def agent_request(argv, csr, user=None):
    """Runs attack_peers.py agent-request (through argv's program); returns its JSON answer."""
    kwargs = dict(user=user, group=user, extra_groups=[]) if user is not None else {}
    result = subprocess.run(argv, input=csr, capture_output=True, timeout=30, cwd="/",
                            env=base_env(), **kwargs)
    check(result.returncode == 0, f"{argv[0]} exited {result.returncode}:\n"
                                  f"{result.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(result.stdout)


def trusted_program(mesh, suffix):
    """A copy of the Python interpreter only root may run (0700), with `suffix` appended so that
    its contents differ from the system's python."""
    directory = os.path.join(mesh.dir, "trusted")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    os.chmod(directory, 0o755)
    path = os.path.join(directory, f"app-{suffix}")
    shutil.copyfile(os.path.realpath(PYTHON), path)
    with open(path, "ab") as f:
        f.write(f"\0meshtls trusted {suffix}\0".encode())
    os.chmod(path, 0o700)
    return path


def in_own_namespace(program, sock):
    """argv for uid 65534: a user + mount namespace of its own, the system's python bind-mounted
    over program's path, then program (now python) asking the agent at sock."""
    script = 'mount --bind "$1" "$2" && exec "$2" "$3" agent-request "$4"'
    return ["unshare", "-Urm", "sh", "-c", script, "sh", os.path.realpath(PYTHON), program, PEERS,
            sock]


def namespaces_available():
    result = subprocess.run(["unshare", "-Urm", "true"], capture_output=True, timeout=10,
                            user=NOBODY, group=NOBODY, extra_groups=[], cwd="/")
    return result.returncode == 0, result.stderr.decode(errors="replace").strip()


def exe_spoofed_from_namespace(mesh, csr):
    """22: an exe rule must not be matched by a bind mount in the caller's own namespace."""
    verdict = Verdict("22 uid 65534 bind-mounts python over an exe rule's path in its own user + "
                      "mount namespace")
    try:
        program = trusted_program(mesh, "exe")
        rule_id = spiffe("ns/secret/sa/trusted")
        config = os.path.join(mesh.dir, "agent-exe.conf")
        with open(config, "w") as f:
            f.write(f'rules = (\n  {{ exe = "{program}"; id = "ns/secret/sa/trusted"; }}\n);\n')
        sock, port = start_agent(mesh, ["--config", config], name="exe-agent", metrics=True)
        agent = mesh.processes[-1]
        metrics = Metrics(port)
        control = agent_request([program, PEERS, "agent-request", sock], csr)
        check(control["id"]["spiffe_id"] == rule_id,
              f"control: root running {program} was told {control['id']!r}, not {rule_id}")
        available, why = namespaces_available()
        check(available, f"unprivileged user namespaces are not available here, so the attack "
                         f"cannot be run: unshare -Urm as uid {NOBODY}: {why}")
        before = metrics.read()
        answer = agent_request(in_own_namespace(program, sock), csr, user=NOBODY)
        expected = spiffe(f"uid/{NOBODY}")
        given = (answer["svid"]["spiffe_id"], answer["id"]["spiffe_id"])
        verdict.evidence.append(f"uid {NOBODY} in its namespace was given {given}")
        verdict.judge("refused", given == (expected, expected),
                      f"uid {NOBODY} running python bind-mounted over {program} was given "
                      f"{given}, expected {expected} (the rule's {rule_id} only for {program})")
        pattern = (rf"warn: rules\[0\] \(\S+:2\) exe {re.escape(program)} does not match pid \d+ "
                   rf"uid {NOBODY}: its executable is named {re.escape(program)} in another "
                   rf"mount namespace but is another file")
        line = log_line(agent, pattern)
        verdict.evidence.append(f"agent: {line}")
        verdict.judge("logged", line is not None,
                      f"no agent line matching {pattern!r}:\n{agent.stderr()[-1500:]}")
        after = metrics.read()
        moved = Metrics.total(after, "meshtls_agent_exe_mismatches_total") - \
            Metrics.total(before, "meshtls_agent_exe_mismatches_total")
        verdict.evidence.append(f"meshtls_agent_exe_mismatches_total +{moved}")
        verdict.judge("counted", moved == 2,
                      f"meshtls_agent_exe_mismatches_total moved by {moved}, expected 2 (the "
                      f"SVID and the ID request)")
    except (TestFailure, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict


def sha256_spoofed_from_namespace(mesh, csr):
    """23: a sha256 rule names contents; a bind mount over the real program's path is other
    contents. Mismatches are logged at debug (every other program mismatches too): no counter."""
    verdict = Verdict("23 uid 65534 bind-mounts python over the program a sha256 rule names",
                      no_counter=True,
                      note="no counter by design: a sha256 mismatch is what every other program "
                           "of the node is; it is logged (debug) and the caller gets its uid ID")
    try:
        program = trusted_program(mesh, "sha256")
        with open(program, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        rule_id = spiffe("ns/secret/sa/hashed")
        config = os.path.join(mesh.dir, "agent-sha256.conf")
        with open(config, "w") as f:
            f.write(f'rules = (\n  {{ sha256 = "{digest}"; id = "ns/secret/sa/hashed"; }}\n);\n')
        sock, _ = start_agent(mesh, ["--config", config, "--log-level", "debug"],
                              name="sha256-agent")
        agent = mesh.processes[-1]
        control = agent_request([program, PEERS, "agent-request", sock], csr)
        check(control["id"]["spiffe_id"] == rule_id,
              f"control: root running {program} was told {control['id']!r}, not {rule_id}")
        answer = agent_request(in_own_namespace(program, sock), csr, user=NOBODY)
        expected = spiffe(f"uid/{NOBODY}")
        given = (answer["svid"]["spiffe_id"], answer["id"]["spiffe_id"])
        verdict.evidence.append(f"uid {NOBODY} in its namespace was given {given}")
        verdict.judge("refused", given == (expected, expected),
                      f"uid {NOBODY} was given {given}, expected {expected}")
        pattern = (rf"debug: rules\[0\] \(\S+:2\) sha256 {digest} does not match pid \d+ uid "
                   rf"{NOBODY}: its executable {re.escape(program)} has other contents")
        line = log_line(agent, pattern)
        verdict.evidence.append(f"agent: {line}")
        verdict.judge("logged", line is not None,
                      f"no agent line matching {pattern!r}:\n{agent.stderr()[-1500:]}")
    except (TestFailure, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict


def hashed(samples, result):
    return Metrics.total(samples, "meshtls_agent_exe_hashes_total", result=result)


def own_large_program(owner, size):
    """A copy of python owned by owner in a directory of its own under /tmp, padded with zeros
    to size bytes (what follows the ELF image is never loaded); returns (directory, path)."""
    directory = os.path.join("/tmp", f"meshtls-hash-{os.getpid()}")
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o755)
    path = os.path.join(directory, "app")
    shutil.copyfile(os.path.realpath(PYTHON), path)
    with open(path, "r+b") as f:
        f.truncate(size)
    os.chmod(path, 0o755)
    os.chown(directory, owner, owner)
    os.chown(path, owner, owner)
    return directory, path


def sha256_hashing_bounded(mesh, csr):
    """23b: only a caller a sha256 rule fits costs a hash, and each uid's hashing is budgeted."""
    verdict = Verdict("23b uid 65533 floods an agent with sha256 rules it does not fit; uid 65534 "
                      "touches its own 64 MiB program before each request")
    directory = None
    try:
        program = trusted_program(mesh, "budget")
        with open(program, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        directory, own = own_large_program(NOBODY, HASHED_PROGRAM_BYTES)
        with open(own, "rb") as f:
            own_digest = hashlib.sha256(f.read()).hexdigest()
        root_id, own_id = spiffe("ns/secret/sa/hashed"), spiffe("ns/nobody/sa/hashed")
        config = os.path.join(mesh.dir, "agent-budget.conf")
        with open(config, "w") as f:
            f.write(f'rules = (\n  {{ uid = 0; sha256 = "{digest}"; id = "ns/secret/sa/hashed"; }},\n'
                    f'  {{ uid = {NOBODY}; sha256 = "{own_digest}"; '
                    f'id = "ns/nobody/sa/hashed"; }}\n);\n')
        sock, port = start_agent(mesh, ["--config", config], name="budget-agent", metrics=True)
        agent = mesh.processes[-1]
        metrics = Metrics(port)
        before = metrics.read()
        control = agent_request([program, PEERS, "agent-request", sock], csr)
        check(control["id"]["spiffe_id"] == root_id,
              f"control: root running {program} was told {control['id']!r}, not {root_id}")
        after_control = metrics.read()
        control_hashes = hashed(after_control, "computed") - hashed(before, "computed")
        verdict.judge("counted", control_hashes == 1,
                      f"control: root's first request moved meshtls_agent_exe_hashes_total"
                      f"{{result=computed}} by {control_hashes}, expected 1")

        # uid 65533 fits no rule: its connections and requests must cost no hash at all.
        started = time.monotonic()
        flood = subprocess.run([PYTHON, "-c", FLOODER, sock, str(FLOOD_CONNECTIONS)],
                               capture_output=True, timeout=60, cwd="/", env=base_env(),
                               user=VICTIM, group=VICTIM, extra_groups=[])
        check(flood.returncode == 0, f"the flood failed: {flood.stderr.decode()[-1500:]}")
        for _ in range(FLOOD_REQUESTS):
            result = subprocess.run([for_other_users(MESHTLS), "id", "--socket", sock],
                                    capture_output=True, timeout=20, cwd="/", env=base_env(),
                                    user=VICTIM, group=VICTIM, extra_groups=[])
            check(result.stdout.decode().strip() == spiffe(f"uid/{VICTIM}"),
                  f"uid {VICTIM} was told {result.stdout!r} {result.stderr[-500:]!r}")
        after_flood = metrics.read()
        flood_hashes = hashed(after_flood, "computed") - hashed(after_control, "computed")
        verdict.evidence.append(f"uid {VICTIM}: {FLOOD_CONNECTIONS} connections and "
                                f"{FLOOD_REQUESTS} ID requests in "
                                f"{time.monotonic() - started:.1f}s cost {flood_hashes} hashes")
        verdict.judge("refused", flood_hashes == 0,
                      f"uid {VICTIM}, which no sha256 rule fits, cost the agent {flood_hashes} "
                      f"hashes (expected none)")

        # uid 65534 makes every request a cache miss; its budget must stop the hashing.
        given = []
        for run in range(OWN_RUNS):
            os.utime(own)
            answer = agent_request([own, PEERS, "agent-request", sock], csr, user=NOBODY)
            told, issued = answer["id"], answer["svid"]
            if told["spiffe_id"] or issued["spiffe_id"]:
                given.append(told["spiffe_id"] or issued["spiffe_id"])
            elif "agent busy" in told["message"] and "agent busy" in issued["message"]:
                given.append("busy")
            else:
                given.append(f"{told!r} {issued!r}")
        after_runs = metrics.read()
        computed = hashed(after_runs, "computed") - hashed(after_flood, "computed")
        over = hashed(after_runs, "over_budget") - hashed(after_flood, "over_budget")
        granted = BUDGET_BYTES // HASHED_PROGRAM_BYTES
        verdict.evidence.append(f"uid {NOBODY}: {OWN_RUNS} runs told {given}; {computed} hashed, "
                                f"{over} refused by the budget")
        # Past the budget: no identity at all (the caller retries), never another rule's or
        # the default uid/65534, which it would then hold for a whole lifetime.
        expected = [own_id] * granted + ["busy"] * (OWN_RUNS - granted)
        verdict.judge("refused", given == expected and computed == granted,
                      f"uid {NOBODY}'s runs were told {given} with {computed} hashes; expected "
                      f"{expected} with {granted} hashes (its budget of 256 MiB a minute)")
        pattern = (rf"warn: did not hash {re.escape(own)} \({HASHED_PROGRAM_BYTES} bytes\), the "
                   rf"executable of pid \d+ uid {NOBODY}: its uid has used its hashing budget")
        line = log_line(agent, pattern)
        verdict.evidence.append(f"agent: {line}")
        verdict.judge("logged", line is not None,
                      f"no agent line matching {pattern!r}:\n{agent.stderr()[-1500:]}")
        verdict.judge("counted", over >= OWN_RUNS - granted,
                      f"meshtls_agent_exe_hashes_total{{result=over_budget}} moved by {over}, "
                      f"expected at least {OWN_RUNS - granted}")
    except (TestFailure, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    return verdict


def loose_issuer_key(mesh):
    """24: --issuer-dir's tls.key is refused like ca.key: readable by group or others, or owned
    by another uid. The kubelet's layout (tls.key -> ..data/tls.key -> ..<stamp>/tls.key) is
    followed to the file. No counter: the agent does not run."""
    verdict = Verdict("24 agent refuses an --issuer-dir tls.key readable by group/others or "
                      "owned by another uid", no_counter=True,
                      note="no counter by design: the agent refuses to start, so there is no "
                           "process to count in")
    try:
        pki = Pki(os.path.join(mesh.dir, "issuer-pki"))
        pki.root("issuer-root")
        pki.intermediate("issuer-ca", "issuer-root")
        workdir = os.path.join(mesh.dir, "issuer-refused")
        for label, mode, owner in (("0644", 0o644, None), ("0640", 0o640, None),
                                   ("0604", 0o604, None), ("owned by 65534", 0o400, NOBODY)):
            shutil.rmtree(workdir, ignore_errors=True)
            os.makedirs(workdir, mode=0o700)
            secret = pki.secret(os.path.join(workdir, "issuer"), "issuer-ca", ["issuer-root"])
            link = os.path.join(secret, "tls.key")
            target = os.path.realpath(link)
            check(os.path.islink(link) and target != link, f"{link} is not a link")
            os.chmod(target, mode)
            if owner is not None:
                os.chown(target, owner, owner)
            status, stderr = run_agent_to_exit(["--issuer-dir", secret], workdir, timeout=10)
            served = os.path.exists(os.path.join(workdir, "refused.sock"))
            verdict.judge("refused", status != 0 and not served,
                          f"tls.key {label}: the agent exited {status}, socket created: {served}")
            expected = (f"{link} belongs to uid {NOBODY}, not to the agent's uid 0: run chown 0 "
                        f"{link}" if owner else
                        f"{link} is accessible by group or others (mode {mode:04o}); the CA key "
                        f"must be 0600: run chmod 600 {link} (on a Kubernetes secret volume, set "
                        f"defaultMode: 0400 instead)")
            verdict.judge("logged", expected in stderr,
                          f"tls.key {label}: expected {expected!r} in:\n{stderr[-1500:]}")
            if expected in stderr:
                verdict.evidence.append(f"tls.key {label}: {expected}")
        # Control: the packaged layout (0400, root's, behind two links) is served.
        shutil.rmtree(workdir, ignore_errors=True)
        secret = pki.secret(os.path.join(mesh.dir, "issuer-ok"), "issuer-ca", ["issuer-root"])
        check(os.stat(os.path.join(secret, "tls.key")).st_mode & 0o777 == 0o400,
              "the test secret's tls.key is not 0400")
        start_agent(mesh, ["--issuer-dir", secret], name="issuer-ok-agent")
    except (TestFailure, OSError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict


def one_uid_starves_the_agent(mesh):
    """25: uid 65534 holds more idle connections than the agent has slots; uid 65533 must still
    be served every time, and the agent's log must stay short."""
    verdict = Verdict("25 uid 65534 holds 300 idle agent connections; uid 65533 runs meshtls id "
                      "20 times")
    holder = ready = None
    try:
        sock, port = start_agent(mesh, [], name="starved-agent", metrics=True)
        agent = mesh.processes[-1]
        metrics = Metrics(port)
        before = metrics.read()
        script = os.path.join(mesh.dir, "holder.py")
        with open(script, "w") as f:
            f.write(HOLDER)
        os.chmod(script, 0o644)
        # uid 65534 cannot write under mesh.dir: it says it is ready in a file of its own.
        ready = os.path.join("/tmp", f"meshtls-holder-ready-{os.getpid()}")
        if os.path.exists(ready):
            os.unlink(ready)
        lines_before = len(agent.stderr().splitlines())
        started = time.monotonic()
        holder = subprocess.Popen([PYTHON, script, sock, str(IDLE_CONNECTIONS), str(HOLD_SECONDS),
                                   ready], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  cwd="/", env=base_env(), user=NOBODY, group=NOBODY,
                                  extra_groups=[])
        wait_for(lambda: os.path.exists(ready) or holder.poll() is not None, 20,
                 "the holder's connections")
        if holder.poll() is not None:
            check(False, f"the holder exited: {holder.communicate()[1].decode()[-1500:]}")
        verdict.evidence.append(f"uid {NOBODY} holds its connections after "
                                f"{time.monotonic() - started:.1f}s")
        time.sleep(1)
        outcomes = []
        for _ in range(VICTIM_CALLS):
            result = subprocess.run([for_other_users(MESHTLS), "id", "--socket", sock],
                                    capture_output=True, timeout=20, cwd="/", env=base_env(),
                                    user=VICTIM, group=VICTIM, extra_groups=[])
            outcomes.append((result.returncode, result.stdout.decode().strip(),
                             result.stderr.decode(errors="replace").strip()))
        served = [o for o in outcomes if o[0] == 0 and o[1] == spiffe(f"uid/{VICTIM}")]
        verdict.evidence.append(f"uid {VICTIM}: {len(served)} of {VICTIM_CALLS} meshtls id served "
                                f"in {time.monotonic() - started:.1f}s of the hold")
        verdict.judge("refused", len(served) == VICTIM_CALLS,
                      f"uid {VICTIM}: only {len(served)} of {VICTIM_CALLS} `meshtls id` served; "
                      f"failures: {[o for o in outcomes if o not in served][:3]}")
        stdout, stderr = holder.communicate(timeout=HOLD_SECONDS + 20)
        holder = None
        verdict.evidence.append(f"holder: {stdout.decode().strip()}")
        # The flood's count is reported within an interval (10 s) of its first line.
        suppressed = r"warn: \d+ similar lines suppressed in the last 10 s"
        line = log_line(agent, suppressed, timeout=15)
        lines = agent.stderr().splitlines()[lines_before:]
        verdict.evidence.append(f"agent: {len(lines)} lines during the attack; {line}")
        verdict.judge("logged", line is not None,
                      f"no agent line matching {suppressed!r} (the count of lines suppressed)")
        verdict.judge("logged", len(lines) < LOG_LINES_MAX,
                      f"the agent wrote {len(lines)} lines during the attack (at most "
                      f"{LOG_LINES_MAX}); the most frequent: "
                      f"{sorted(set(lines), key=lines.count)[-2:]}")
        evicted = rf"warn: closed the idle connection of pid \d+ uid {NOBODY} .* to serve pid \d+ "\
                  rf"uid {VICTIM}"
        verdict.judge("logged", log_line(agent, evicted, timeout=1) is not None,
                      f"no agent line matching {evicted!r}")
        after = metrics.read()
        moved = Metrics.total(after, "meshtls_agent_connections_refused_total",
                              reason="evicted") - \
            Metrics.total(before, "meshtls_agent_connections_refused_total", reason="evicted")
        verdict.evidence.append(
            f"meshtls_agent_connections_refused_total{{reason=evicted}} +{moved}")
        verdict.judge("counted", moved >= 1,
                      f"meshtls_agent_connections_refused_total{{reason=\"evicted\"}} moved by "
                      f"{moved}, expected at least 1")
    except (TestFailure, OSError, ValueError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        if holder is not None:
            holder.kill()
            holder.wait(10)
        if ready is not None and os.path.exists(ready):
            os.unlink(ready)
    return verdict


def agent_attacks(mesh):
    """Attacks 22-25 (and 23b), in order; each verdict stands alone."""
    # The agents' sockets are under mesh.dir: other users must be able to traverse it.
    os.chmod(mesh.dir, 0o711)
    try:
        csr = make_csr(mesh.dir)
        verdicts = [exe_spoofed_from_namespace(mesh, csr), sha256_spoofed_from_namespace(mesh, csr),
                    sha256_hashing_bounded(mesh, csr), loose_issuer_key(mesh),
                    one_uid_starves_the_agent(mesh)]
    finally:
        os.chmod(mesh.dir, 0o700)
    log(f"agent attacks by local users: {len(verdicts)} verdicts")
    return verdicts


if __name__ == "__main__":
    sys.exit("run through test_attacks.py")
