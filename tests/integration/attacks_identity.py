"""Attacks on the workload's trust in its agent, for the attack suite (test_attacks.py).

18  An impostor serves the agent socket. Where workloads can write the socket's directory (a
    Kubernetes hostPath mounted read-write), another program can put its own socket in the
    agent's place and hand every workload that connects its identity and, worse, its trust
    bundle. The impostor here is a real meshtls-agent with its own CA, in the same trust domain,
    run as uid 65534, and a meshed server that takes its identity from it (told to trust uid 65534
    with MESHTLS_AGENT_UID, so the impostor's side works on any version) on a permissive port that
    answers any byte, TLS or plaintext, with a secret. The victims are a meshed client given the
    impostor's socket, and `meshtls id` / `meshtls status` pointed at it, all expecting agent_uid
    0 (the default). Each must refuse the agent before sending it anything: no identity from it,
    the client's connection fails closed (no secret: neither TLS under the impostor's bundle nor a
    plaintext fallback), and one line says who serves the socket and what to do.

    Counted: no counter can move. A workload's metrics file lives beside the socket it was given,
    so the victim's counters are in the impostor's directory, which no real agent reads.

19-21  Leaves signed by the agent's real CA that break one rule of the X509-SVID standard each,
    beyond those of attacks 6-10: an ID without a path (the trust domain's own, 3.1), a keyUsage
    not marked critical (4.3), an extendedKeyUsage of serverAuth and anyExtendedKeyUsage, without
    clientAuth (4.4). They join the
    certificate attacks of test_attacks.py (SVID_RULE_ATTACKS, svid_rule_specs), so each is
    tried inbound (attacker -> meshed server) and outbound (meshed client -> rogue server), and
    refused, logged and counted like attacks 6-10. tests/unit/test_svid.c has every rule.
"""

import os
import re
import stat
import subprocess

from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, TestFailure, base_env, check,
                     free_port, port_listening, random_token, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "attack_peers.py")
NOBODY = 65534
TD = "meshtls.local"


SVID_REASON = r"peer certificate is not a valid X\.509-SVID: "
# (name, certificate, reason regex, reason class), as CERTIFICATE_ATTACKS in test_attacks.py.
SVID_RULE_ATTACKS = [
    ("19 leaf for the bare trust domain, no path (X509-SVID 3.1)", "no-path",
     SVID_REASON + r"SPIFFE ID has no path", "bad_svid"),
    ("20 leaf whose keyUsage is not critical (X509-SVID 4.3)", "ku-not-critical",
     SVID_REASON + r"keyUsage not marked critical", "bad_svid"),
    # anyExtendedKeyUsage lets the certificate past wolfSSL's own purpose check (clientAuth for
    # a client, serverAuth for a server) in both directions: the standard's rule is then ours.
    ("21 leaf whose extendedKeyUsage lacks clientAuth (X509-SVID 4.4)", "eku-any-server",
     SVID_REASON + r"extendedKeyUsage lacks serverAuth or clientAuth", "bad_svid"),
]


def svid_rule_specs(good_uri):
    """The certificates of SVID_RULE_ATTACKS: {name: (issuer, SANs, Pki.leaf options)}."""
    return {
        "no-path": ("agentca", [f"URI:spiffe://{TD}"], {}),
        "ku-not-critical": ("agentca", [good_uri], {"key_usage": "digitalSignature"}),
        "eku-any-server": ("agentca", [good_uri], {"eku": "serverAuth,anyExtendedKeyUsage"}),
    }


def _agent_env():
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)  # the agent links the sanitizer runtime itself
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    return env


class _Impostor:
    """meshtls-agent as uid 65534 with its own state (its own CA), serving sock."""

    def __init__(self, directory, sock):
        self.log_path = os.path.join(directory, "impostor-agent.err")
        state = os.path.join(directory, "state")
        with open(self.log_path, "wb") as log_file:
            self.popen = subprocess.Popen(
                [AGENT, "--socket", sock, "--state-dir", state, "--metrics-address", "off",
                 "--trust-domain", TD],
                stdout=subprocess.DEVNULL, stderr=log_file, stdin=subprocess.DEVNULL,
                env=_agent_env(), cwd="/", user=NOBODY, group=NOBODY, extra_groups=[])

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _meshed(config, argv, env=None, stdin=subprocess.DEVNULL, stderr_path=None):
    """argv under `meshtls run`: stdout and stderr piped, or stderr to stderr_path (a server,
    whose output nobody reads as it runs)."""
    environment = base_env()
    environment.update(env or {})
    stderr = open(stderr_path, "wb") if stderr_path else subprocess.PIPE
    try:
        return subprocess.Popen([MESHTLS, "run", "--config", config, "--"] + argv,
                                stdin=stdin,
                                stdout=subprocess.DEVNULL if stderr_path else subprocess.PIPE,
                                stderr=stderr, env=environment, cwd="/")
    finally:
        if stderr_path:
            stderr.close()


def impostor_agent(mesh):
    """18: see the module's docstring."""
    # Imported here: test_attacks imports this module at its top.
    from test_attacks import Verdict
    verdict = Verdict("18 an impostor (uid 65534, its own CA) serves the agent socket",
                      no_counter=True,
                      note="no counter reachable: a workload's metrics file lives beside the "
                           "socket it was given, here the impostor's directory, which no real "
                           "agent reads")
    directory = os.path.join(mesh.dir, "impostor")
    sock = os.path.join(directory, "agent.sock")
    secret = "IMPOSTOR-" + random_token()
    impostor = server = None
    try:
        os.makedirs(directory)
        os.chown(directory, NOBODY, NOBODY)
        os.chmod(mesh.dir, 0o711)  # the impostor must reach its directory
        impostor = _Impostor(directory, sock)
        wait_for(lambda: f"serving {sock}:" in impostor.log() or impostor.popen.poll() is not None,
                 20, "the impostor agent to serve its socket")
        check(impostor.popen.poll() is None, f"the impostor agent exited:\n{impostor.log()}")
        check(os.stat(sock).st_uid == NOBODY and stat.S_ISSOCK(os.stat(sock).st_mode),
              f"{sock} is not a socket of uid {NOBODY}")

        # The impostor's own server: a meshed server that trusts uid 65534 as its agent.
        port = free_port()
        config = os.path.join(directory, "impostor-server.conf")
        with open(config, "w") as f:
            f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                    f'inbound = {{ loopback = "permissive"; }};\n')
        server_log = os.path.join(directory, "impostor-server.err")
        server = _meshed(config, [PYTHON, PEERS, "serve", secret, str(port)],
                         env={"MESHTLS_AGENT_UID": str(NOBODY)}, stderr_path=server_log)
        wait_for(lambda: port_listening(port) or server.poll() is not None, 20,
                 "the impostor's server to listen")
        check(server.poll() is None, "the impostor's server exited")

        # The victim: a meshed client given the impostor's socket, expecting the default uid 0.
        victim_config = os.path.join(directory, "victim.conf")
        with open(victim_config, "w") as f:
            f.write(f'agent_socket = "{sock}";\nlog_level = "info";\nagent_wait_ms = 1000;\n'
                    f'outbound = {{ loopback = "mtls"; }};\ninbound = {{ loopback = "strict"; }};\n')
        victim = _meshed(victim_config, [PYTHON, PEERS, "probe"], stdin=subprocess.PIPE)
        out, err = victim.communicate(f"{port}\n".encode(), timeout=60)
        answer, err = out.decode(errors="replace").strip(), err.decode(errors="replace")
        verdict.judge("refused", secret.encode().hex() not in answer and " ok " not in answer,
                      f"the victim was served by the impostor's server: {answer!r}")
        verdict.judge("refused", answer.startswith(f"{port} fail"),
                      f"the victim's connection did not fail: {answer!r}")
        given = re.findall(rf"issued \S+ to pid {victim.pid}\b", impostor.log())
        verdict.judge("refused", not given,
                      f"the impostor issued an identity to the victim: {given}")
        verdict.judge("refused", not re.search(r"identity spiffe://\S+, valid until", err),
                      "the victim installed an identity from the impostor")
        refusal = (rf"refusing the agent at {re.escape(sock)}: it is served by uid {NOBODY} "
                   rf"\(pid \d+\), expected uid 0 \(agent_uid\)")
        line = next((l for l in err.splitlines() if re.search(refusal, l)), None)
        verdict.judge("logged", line is not None,
                      f"no victim line matching {refusal!r}:\n{err[-2000:]}")
        if line:
            verdict.evidence.append(line.strip())
        closed = re.search(rf"refused outbound connection to 127\.0\.0\.1:{port} \(mode mtls\)",
                           err)
        verdict.judge("logged", closed is not None,
                      f"no refused-outbound line for :{port} in the victim's log:\n{err[-2000:]}")

        # The CLI reads the same socket: `meshtls id` and `meshtls status` refuse it too.
        for command in (["id"], ["status", "--socket", sock]):
            env = base_env()
            env["MESHTLS_AGENT_SOCKET"] = sock
            result = subprocess.run([MESHTLS] + command, capture_output=True, timeout=30,
                                    env=env, cwd="/")
            said = result.stderr.decode(errors="replace")
            verdict.judge("refused", result.returncode != 0 and b"spiffe://" not in result.stdout,
                          f"meshtls {command[0]} accepted the impostor ({result.returncode}): "
                          f"{result.stdout!r}")
            verdict.judge("logged", re.search(refusal, said) is not None,
                          f"meshtls {command[0]} did not say why: {said!r}")
    except (TestFailure, OSError, ValueError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        for process in (server, impostor):
            if process is None:
                continue
            if isinstance(process, _Impostor):
                process.stop()
            elif process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        os.chmod(mesh.dir, 0o700)
    return verdict
