"""Attacks on the workload's trust in its agent, for the attack suite (test_attacks.py).

26  An impostor serves the agent socket. Where workloads can write the socket's directory (a
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

27-29  Leaves signed by the agent's real CA that break one rule of the X509-SVID standard each,
    beyond those of attacks 6-10: an ID without a path (the trust domain's own, 3.1), a keyUsage
    not marked critical (4.3), an extendedKeyUsage of serverAuth and anyExtendedKeyUsage, without
    clientAuth (4.4). They join the
    certificate attacks of test_attacks.py (SVID_RULE_ATTACKS, svid_rule_specs), so each is
    tried inbound (attacker -> meshed server) and outbound (meshed client -> rogue server), and
    refused, logged and counted like attacks 6-10. tests/unit/test_svid.c has every rule.

30  A client sends its leaf with an intermediate that is not an X.509-SVID signing certificate
    (keyUsage keyCertSign, but not marked critical, X509-SVID 4.3), both under the root the
    server trusts. wolfSSL's path validation accepts the chain; the workload checks every
    certificate a peer sends after its leaf as a signing certificate and refuses it. The dev CA
    cannot sign intermediates (pathlen 0), so this attack has its own agent with an issuer
    directory (root -> intermediate, as cert-manager lays it out), its own meshed server, and a
    control client whose chain differs only in that keyUsage being critical.
"""

import os
import re
import stat
import subprocess

from harness import (AGENT, ASAN_RUNTIME, MESHTLS, PYTHON, TestFailure, base_env, check,
                     for_other_users, free_port, port_listening, random_token, wait_agent_ready,
                     wait_for)
from lifecycle_common import Pki, openssl
from attack_peers import tls_client
from attack_verdicts import Metrics, Verdict, log_line, peer_lines

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "attack_peers.py")
NOBODY = 65534
TD = "meshtls.local"


SVID_REASON = r"peer certificate is not a valid X\.509-SVID: "
# (name, certificate, reason regex, reason class), as CERTIFICATE_ATTACKS in test_attacks.py.
SVID_RULE_ATTACKS = [
    ("27 leaf for the bare trust domain, no path (X509-SVID 3.1)", "no-path",
     SVID_REASON + r"SPIFFE ID has no path", "bad_svid"),
    ("28 leaf whose keyUsage is not critical (X509-SVID 4.3)", "ku-not-critical",
     SVID_REASON + r"keyUsage not marked critical", "bad_svid"),
    # anyExtendedKeyUsage lets the certificate past wolfSSL's own purpose check (clientAuth for
    # a client, serverAuth for a server) in both directions: the standard's rule is then ours.
    ("29 leaf whose extendedKeyUsage lacks clientAuth (X509-SVID 4.4)", "eku-any-server",
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
                [for_other_users(AGENT), "--socket", sock, "--state-dir", state,
                 "--metrics-address", "off",
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
    """26: see the module's docstring."""
    verdict = Verdict("26 an impostor (uid 65534, its own CA) serves the agent socket",
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
        # One line when the agent is refused (not one per retry while waiting for an agent),
        # and the refused connection's own line, which repeats the reason.
        lines = [l for l in err.splitlines() if re.search("no new identity: " + refusal, l)]
        line = lines[0] if lines else None
        verdict.judge("logged", len(lines) == 1,
                      f"{len(lines)} victim lines matching {refusal!r}, expected one (the "
                      f"impostor is refused once, not waited for):\n{err[-2000:]}")
        if line:
            verdict.evidence.append(line.strip())
        closed = re.search(rf"refused outbound connection to 127\.0\.0\.1:{port} \(mode mtls\): "
                           rf"no workload identity: {refusal}", err)
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


def _weak_intermediate(pki, name, root):
    """name.crt: CA:TRUE, keyCertSign and cRLSign in a keyUsage NOT marked critical, signed by
    root; everything else as Pki.intermediate makes it."""
    extensions = pki.path(name + ".ext")
    with open(extensions, "w") as f:
        f.write("[e]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n"
                "keyUsage = keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
                "authorityKeyIdentifier = keyid:always\n"
                f"subjectAltName = URI:spiffe://{TD}\n")
    key = pki.key(name)
    request = pki.path(name + ".csr")
    openssl("req", "-new", "-key", key, "-subj", f"/O=operator/CN={name}", "-out", request)
    openssl("x509", "-req", "-in", request, "-CA", pki.path(root + ".crt"), "-CAkey",
            pki.path(root + ".key"), "-set_serial", "7001", "-days", "3650", "-extfile",
            extensions, "-extensions", "e", "-out", pki.path(name + ".crt"))
    return pki.path(name + ".crt")


def _chain(pki, name, leaf, intermediate):
    """name.pem: leaf then intermediate, as a TLS peer sends them."""
    with open(pki.path(name + ".pem"), "wb") as f:
        f.write(pki.read(leaf + ".crt") + pki.read(intermediate + ".crt"))
    return pki.path(name + ".pem"), pki.path(leaf + ".key")


def weak_intermediate(mesh):
    """30: see the module's docstring."""
    verdict = Verdict("30 leaf sent with an intermediate whose keyUsage is not critical "
                      "-> strict port")
    secret = "CHAIN-" + random_token()
    uri = f"URI:spiffe://{TD}/ns/chained"
    try:
        pki = Pki(os.path.join(mesh.dir, "chain-pki"))
        pki.root("chainroot")
        pki.intermediate("chainissuer", "chainroot")
        _weak_intermediate(pki, "weakint", "chainroot")
        pki.leaf("weakleaf", "weakint", [uri])
        pki.intermediate("goodint", "chainroot")
        pki.leaf("goodleaf", "goodint", [uri])
        weak = _chain(pki, "weak-chain", "weakleaf", "weakint")
        good = _chain(pki, "good-chain", "goodleaf", "goodint")
        secret_dir = os.path.join(mesh.dir, "chain-issuer")
        pki.secret(secret_dir, "chainissuer", ["chainroot"])

        # An agent of its own, with its own socket directory (and so its own metrics files).
        run = os.path.join(mesh.dir, "chain-run")
        os.makedirs(run)
        sock = os.path.join(run, "agent.sock")
        metrics_port = free_port()
        agent = mesh.spawn("chain-agent", [
            AGENT, "--socket", sock, "--state-dir", os.path.join(mesh.dir, "chain-state"),
            "--metrics-address", f"127.0.0.1:{metrics_port}", "--issuer-dir", secret_dir,
            "--lifetime", "3600"], env=_agent_env())
        wait_agent_ready(agent, sock, "the chain agent")
        metrics = Metrics(metrics_port)

        port = free_port()
        config = os.path.join(run, "server.conf")
        with open(config, "w") as f:
            f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                    f'inbound = {{ loopback = "strict"; }};\n')
        server = mesh.meshed("chain-server", [PYTHON, PEERS, "serve", secret, str(port)],
                             config=config)
        wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
                 "the chain server to listen")
        check(server.popen.poll() is None, f"the chain server exited:\n{server.stderr()}")

        control = tls_client(port, *good)
        check(control.received == f"{secret} 6\n".encode(),
              f"control: the chain [leaf, intermediate with a critical keyUsage] was not served: "
              f"{control}\n{peer_lines(server, control.local_port)}")

        before = metrics.read()
        outcome = tls_client(port, *weak)
        verdict.judge("refused", outcome.application_bytes() == b"",
                      f"the attacker received {outcome.received[:80]!r}")
        pattern = (rf"warn: refused inbound connection from 127\.0\.0\.1:{outcome.local_port} "
                   rf"on :{port} \(mode strict\): peer chain certificate 1 is not an X\.509-SVID "
                   rf"signing certificate: keyUsage not marked critical")
        line = log_line(server, pattern)
        verdict.evidence.append(f"server: {line}")
        verdict.judge("logged", line is not None,
                      f"no line matching {pattern!r}; the server's lines for this peer: "
                      f"{peer_lines(server, outcome.local_port)}")
        metrics.judge_failure(verdict, before, server.popen.pid, "inbound", "bad_svid")
    except (TestFailure, OSError, ValueError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict
