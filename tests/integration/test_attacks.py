"""The attack suite of "Adversarial hardening": every attack is refused, logged and counted.

One agent (dev CA, metrics endpoint, a rule giving uid 0 the identity ns/root/sa/admin), one
meshed server on four ports (strict; strict with allow ["…/ns/a"]; strict with allow
["…/ns/a/*"]; permissive) that answers any application byte with a secret, and one long-lived
meshed client (the prober) that checks after every attack that the server still serves a
meshed client, and that is itself sent to rogue servers. The attackers are Python's own `ssl`
and raw sockets, not under the preload; their certificates are made with the openssl command
line, signed by the agent's real CA (from its --state-dir) unless the attack is a foreign CA.

For each attack the test asserts
  refused  the attacker received no application byte (not the secret, nothing), the connection
           was closed within the configured timeouts, and the prober is still served;
  logged   the victim wrote the one line naming peer, port, mode and reason
           ("refused inbound connection from 127.0.0.1:P on :N (mode strict): <reason>",
           "refused outbound connection to 127.0.0.1:N (mode mtls): <reason>");
  counted  the agent's /metrics shows exactly one more handshake_failures_total for the victim's
           pid, direction and reason class (and one more inbound_tcp_authz_deny_total for an
           allow-list refusal).

Inbound (attacker → meshed server): plaintext; no client certificate (strict, and permissive with
the mesh ALPN); a foreign CA; expired; not yet valid; two URI SANs; no URI SAN; a non-SPIFFE URI;
CA:TRUE; the agent's CA certificate itself as the leaf; another trust domain; allow-list
patterns (exact "…/ns/a" refuses ns/ab and ns/a/b; "…/ns/a/*" refuses ns/ab and ns/a — both
admit what they should, as controls); TLS 1.2 (and 1.1/1.0 where the local OpenSSL still sends
them); garbage bytes and a truncated ClientHello on the strict and on the permissive port.
On the permissive port garbage that is not a ClientHello is, by design, handed to the application
as plaintext (README "permissive"): asserted byte for byte, logged at info and counted as a
tls="false" connection. A truncated ClientHello is TLS, never plaintext: it must be refused within
detect_timeout_ms + handshake_timeout_ms.
Outbound (meshed client → rogue server): plaintext server, foreign CA, expired, not yet valid,
two URIs, no URI, non-SPIFFE URI, CA:TRUE, the agent CA as server certificate, another trust
domain, an expected identity "…/ns/a" (exact) against ns/ab and ns/a/b, a TLS 1.2-only server;
and a well-formed crafted SVID as the control.
Agent: a process of uid 65534 whose CSR claims root's identity gets spiffe://…/uid/65534 (logged
and counted as an issuance), never root's; the socket is 0666 by design, the state directory 0700,
ca.key 0600, and the agent refuses to start with a ca.key readable by group or others or owned by
another uid, saying what to do (no counter: the agent does not run).

With MESHTLS_FIGURES_DIR set, writes $MESHTLS_FIGURES_DIR/attacks.json:
{"attacks": [{"name", "refused", "logged", "counted"}, ...]} (counted is null where no counter
exists by design; "note" explains entries that are not a refusal by design). Every attack runs
even when an earlier one fails; the test fails if any one is not as expected.
"""

import json
import os
import re
import shutil
import ssl
import stat
import subprocess
import threading
import time

import test_exec_session
from attack_peers import (Outcome, RogueServers, TicketClient, client_hello, raw_client,
                          tls_client, version_available)
from attack_verdicts import (NOBODY, PEER, PEERS, TD, Metrics, Verdict, log_line, peer_lines,
                             spiffe)
from attacks_agent import agent_attacks
from attacks_identity import (SVID_RULE_ATTACKS, impostor_agent, svid_rule_specs,
                              weak_intermediate)
from attacks_metrics import metrics_amplification, metrics_directory_swap, metrics_squat
from harness import (BUILD, PYTHON, SESSION_EXPORT, Mesh, TestFailure, base_env, check,
                     free_port, main, port_listening, random_token, wait_for)
from lifecycle_common import FAR_AHEAD, LONG_AGO, Pki, log, run_agent_to_exit, start_agent

TICKET_CLIENT = os.path.join(BUILD, "tests", "integration", "ticket_client")
ROOT_ID = f"spiffe://{TD}/ns/root/sa/admin"
HANDSHAKE_TIMEOUT_MS = 2000
DETECT_TIMEOUT_MS = 1500


class Prober:
    """The long-lived meshed client: one request per call, answered on its stdout."""

    def __init__(self, mesh, config):
        self.process = mesh.meshed("prober", [PYTHON, PEERS, "probe"], config=config,
                                   stdin=subprocess.PIPE)
        self.count = 0

    def request(self, port, timeout=15):
        self.process.popen.stdin.write(f"{port}\n".encode())
        self.process.popen.stdin.flush()
        self.count += 1
        lines = []

        def answered():
            lines[:] = self.process.stdout().decode(errors="replace").splitlines()
            return len(lines) >= self.count or self.process.popen.poll() is not None
        wait_for(answered, timeout, f"the prober's answer for port {port}")
        check(len(lines) >= self.count,
              f"the prober exited ({self.process.popen.poll()}):\n{self.process.stderr()[-3000:]}")
        return lines[self.count - 1]


def make_certificates(pki, agent_state):
    """Every crafted certificate, as {name: (cert, key)}."""
    pki.adopt("agentca", os.path.join(agent_state, "ca.crt"), os.path.join(agent_state, "ca.key"))
    pki.root("foreignca")
    good_uri = f"URI:{spiffe('ns/a')}"
    specs = {
        # Well-formed SVIDs signed by the real CA: the controls, and the allow-list attackers.
        "ns-a": ("agentca", [good_uri], {}),
        "ns-ab": ("agentca", [f"URI:{spiffe('ns/ab')}"], {}),
        "ns-a-b": ("agentca", [f"URI:{spiffe('ns/a/b')}"], {}),
        # One broken rule each.
        "foreign": ("foreignca", [good_uri], {}),
        "expired": ("agentca", [good_uri], {"start": LONG_AGO, "end": "20210101000000Z"}),
        "future": ("agentca", [good_uri], {"start": "20980101000000Z", "end": FAR_AHEAD}),
        "two-uris": ("agentca", [good_uri, f"URI:{spiffe('ns/b')}"], {}),
        "no-uri": ("agentca", ["DNS:ns-a.meshtls.local"], {}),
        "not-spiffe": ("agentca", ["URI:https://meshtls.local/ns/a"], {}),
        "ca-true": ("agentca", [good_uri], {"is_ca": True}),
        "other-domain": ("agentca", [f"URI:{spiffe('ns/a', 'other.domain')}"], {}),
    }
    specs.update(svid_rule_specs(good_uri))
    certificates = {}
    for name, (issuer, sans, options) in specs.items():
        certificates[name] = (pki.leaf(name, issuer, sans, **options), pki.path(name + ".key"))
    certificates["agent-ca"] = (pki.path("agentca.crt"), pki.path("agentca.key"))
    return certificates


# A missing client certificate is a missing SVID; an old protocol version has no class of its own.
NO_CERT_REASON, NO_CERT_CLASS = r"peer did not return a certificate", "bad_svid"
OLD_VERSION_REASON = r"peer offered only TLS 1\.2 or older; TLS 1\.3 is required"
OLD_VERSION_CLASS = "other"
# A TLS 1.2-only server answers a TLS 1.3-only ClientHello with a protocol_version alert
# (RFC 8446 §4.2.1): a TLS record (content type 21), so the client must say so, not "not TLS".
OLD_SERVER_REASON, OLD_SERVER_CLASS = r"peer sent TLS alert 70\b", "peer_rejected"
SVID_REASON = r"peer certificate is not a valid X\.509-SVID: "
# name in the attacks list -> (certificate, reason regex, reason class), for both directions.
CERTIFICATE_ATTACKS = [
    ("3 foreign CA", "foreign",
     r"peer certificate not issued by a trusted anchor \(foreign CA\?\)", "untrusted_ca"),
    ("4 expired leaf", "expired", r"peer certificate expired", "expired"),
    ("5 not-yet-valid leaf", "future", r"peer certificate not yet valid", "expired"),
    ("6 leaf with two URI SANs", "two-uris", SVID_REASON + "more than one URI SAN", "bad_svid"),
    ("7 leaf with no URI SAN", "no-uri", SVID_REASON + "no URI SAN", "bad_svid"),
    ("8 leaf with a non-SPIFFE URI", "not-spiffe",
     SVID_REASON + "URI SAN is not a valid SPIFFE ID", "bad_svid"),
    ("9 leaf marked CA:TRUE", "ca-true", SVID_REASON + "marked CA", "bad_svid"),
    ("10 the agent's CA certificate as the leaf", "agent-ca", SVID_REASON + "marked CA",
     "bad_svid"),
    ("11 wrong trust domain", "other-domain",
     r"peer identity spiffe://other\.domain/ns/a is not in trust domain meshtls\.local",
     "bad_svid"),
] + SVID_RULE_ATTACKS


def test():
    verdicts = []
    secret = "SECRET-" + random_token()
    rogue_secret = "ROGUE-" + random_token()
    with Mesh("attacks") as mesh:
        started = time.monotonic()
        agent_config = os.path.join(mesh.dir, "agent-rules.conf")
        with open(agent_config, "w") as f:
            f.write(f'rules = (\n  {{ uid = 0; id = "ns/root/sa/admin"; }}\n);\n')
        sock, metrics_port = start_agent(mesh, ["--config", agent_config, "--lifetime", "3600"],
                                         metrics=True)
        agent = mesh.processes[-1]
        agent_state = os.path.join(mesh.dir, "agent-state")
        metrics = Metrics(metrics_port)
        pki = Pki(os.path.join(mesh.dir, "pki"))
        certificates = make_certificates(pki, agent_state)
        log(f"{len(certificates)} certificates made")

        strict, exact, prefix, permissive = (free_port() for _ in range(4))
        server_config = os.path.join(mesh.dir, "server.conf")
        with open(server_config, "w") as f:
            f.write(f"""agent_socket = "{sock}";
log_level = "info";
handshake_timeout_ms = {HANDSHAKE_TIMEOUT_MS};
detect_timeout_ms = {DETECT_TIMEOUT_MS};
outbound = {{ loopback = "mtls"; }};
inbound = {{
    loopback = "strict";
    rules = (
        {{ port = {strict}; mode = "strict"; }},
        {{ port = {exact}; mode = "strict"; allow = ["{spiffe('ns/a')}"]; }},
        {{ port = {prefix}; mode = "strict"; allow = ["{spiffe('ns/a')}/*"]; }},
        {{ port = {permissive}; mode = "permissive"; }}
    );
}};
""")
        ports = [strict, exact, prefix, permissive]
        server = mesh.meshed("server", [PYTHON, PEERS, "serve", secret] + [str(p) for p in ports],
                             config=server_config)
        wait_for(lambda: all(port_listening(p) for p in ports) or server.popen.poll() is not None,
                 20, "the meshed server to listen")
        check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")

        # Rogue servers for the outbound direction; their ports are in the prober's rules.
        rogues = RogueServers(rogue_secret)
        rogue_ports = {name: free_port() for name in
                       [c for _, c, _, _ in CERTIFICATE_ATTACKS] +
                       ["plaintext", "tls12", "ns-a", "ns-ab", "ns-a-b"]}
        for name, port in rogue_ports.items():
            if name == "plaintext":
                rogues.add(port, plaintext=True)
            elif name == "tls12":
                rogues.add(port, *certificates["ns-a"], maximum=ssl.TLSVersion.TLSv1_2)
            else:
                rogues.add(port, *certificates[name])
        expect_ns_a = [rogue_ports["ns-a"], rogue_ports["ns-ab"], rogue_ports["ns-a-b"]]
        prober_config = os.path.join(mesh.dir, "prober.conf")
        with open(prober_config, "w") as f:
            f.write(f"""agent_socket = "{sock}";
log_level = "info";
handshake_timeout_ms = {HANDSHAKE_TIMEOUT_MS};
inbound = {{ loopback = "strict"; }};
outbound = {{
    loopback = "mtls";
    rules = (
        {{ to = "127.0.0.1"; ports = [{", ".join(map(str, expect_ns_a))}]; mode = "mtls";
           identity = "{spiffe('ns/a')}"; }}
    );
}};
""")
        prober = Prober(mesh, prober_config)

        def served(port=strict):
            line = prober.request(port)
            return line.startswith(f"{port} ok ") and \
                bytes.fromhex(line.split()[2]) == f"{secret} 6\n".encode(), line

        ok, line = served()
        check(ok, f"the prober is not served before any attack: {line}\n{prober.process.stderr()}")
        log(f"mesh up after {time.monotonic() - started:.1f}s")

        # --- Inbound ------------------------------------------------------------------------

        def inbound(name, port, mode, attempt, reason, reason_class, authz_peer=None,
                    bound=5.0):
            """Runs attempt() (an Outcome) against the server and judges the three aspects."""
            verdict = Verdict(name)
            verdicts.append(verdict)
            try:
                before = metrics.read()
                outcome = attempt()
                verdict.judge("refused", outcome.application_bytes() == b"",
                              f"the attacker received {outcome.received[:80]!r}")
                if outcome.served_during is not None:
                    verdict.judge("refused", outcome.served_during[0],
                                  f"a meshed client was not served on :{port} while the attacker "
                                  f"held its connection: {outcome.served_during[1]}")
                verdict.judge("refused", outcome.closed_after is not None and
                              outcome.closed_after <= bound,
                              f"the connection was not closed within {bound}s ({outcome})")
                pattern = (rf"warn: refused inbound connection from {PEER}:{outcome.local_port} "
                           rf"on :{port} \(mode {mode}\): {reason}")
                line = log_line(server, pattern)
                verdict.evidence.append(f"server: {line}")
                verdict.judge("logged", line is not None,
                              f"no line matching {pattern!r}; the server's lines for this peer: "
                              f"{peer_lines(server, outcome.local_port)}")
                extra = ()
                if authz_peer:
                    extra = (("inbound_tcp_authz_deny_total",
                              dict(pid=server.popen.pid, port=port, peer_id=authz_peer), 1),)
                metrics.judge_failure(verdict, before, server.popen.pid, "inbound", reason_class,
                                      extra)
                ok, line = served()
                verdict.judge("refused", ok, f"the server stopped serving the prober: {line}")
            except (TestFailure, OSError) as error:
                verdict.judge("refused", False, f"{type(error).__name__}: {error}")
            return verdict

        def valid(name, port, cert):
            outcome = tls_client(port, *certificates[cert])
            check(outcome.received == f"{secret} 6\n".encode(),
                  f"control: {name} was not served on :{port}: {outcome}\n"
                  f"{peer_lines(server, outcome.local_port)}")

        inbound("1 plaintext client -> strict port", strict, "strict",
                lambda: raw_client(strict, b"GET / HTTP/1.0\r\n\r\n"),
                r"peer did not speak TLS", "not_tls")
        inbound("2 client with no certificate -> strict port", strict, "strict",
                lambda: tls_client(strict), NO_CERT_REASON, NO_CERT_CLASS)
        inbound("2 client with no certificate, mesh ALPN -> permissive port", permissive,
                "permissive", lambda: tls_client(permissive, alpn=["meshtls/1"]),
                NO_CERT_REASON, NO_CERT_CLASS)
        for name, cert, reason, reason_class in CERTIFICATE_ATTACKS:
            inbound(f"{name} -> strict port", strict, "strict",
                    lambda cert=cert: tls_client(strict, *certificates[cert]), reason,
                    reason_class)

        # 12: identity patterns, exactly as documented (README "Identity patterns").
        valid("ns/a on allow [.../ns/a]", exact, "ns-a")
        valid("ns/a/b on allow [.../ns/a/*]", prefix, "ns-a-b")
        for port, pattern, cert, peer_path in ((exact, "ns/a", "ns-ab", "ns/ab"),
                                               (exact, "ns/a", "ns-a-b", "ns/a/b"),
                                               (prefix, "ns/a/*", "ns-ab", "ns/ab"),
                                               (prefix, "ns/a/*", "ns-a", "ns/a")):
            rule = 1 if port == exact else 2
            inbound(f"12 allow [spiffe://{TD}/{pattern}] refuses {spiffe(peer_path)}", port,
                    "strict", lambda port=port, cert=cert: tls_client(port, *certificates[cert]),
                    rf"client identity {re.escape(spiffe(peer_path))} is not in the allow list "
                    rf"of inbound\.rules\[{rule}\] \(we are {re.escape(ROOT_ID)}\)",
                    "policy", authz_peer=spiffe(peer_path))

        # 18: ticket rebinding. ns/ab copies ns/a's ticket off the wire and offers it with its
        # own certificate: the ticket's age is wrong, so the server does a full handshake with
        # ns/ab's certificate. The ticket that handshake earns must bind ns/ab, never ns/a:
        # resuming with it on the ns/a-only port is refused as ns/ab (one deny, counted once).
        tickets = TicketClient(TICKET_CLIENT, pki.path("agentca.crt"),
                               [certificates["ns-a"], certificates["ns-ab"]])

        def rebind():
            victim = tickets.connect(strict, 0)
            thief = tickets.connect(strict, 1)
            check(victim["ticket"] and thief["ticket"], f"no tickets: {victim} {thief}")
            earned = tickets.connect(strict, 1, f"{victim['index']}:{thief['index']}")
            check(earned["ok"] and not earned["resumed"] and earned["ticket"],
                  f"offering a copied ticket did not end in a full handshake: {earned}")
            attempt = tickets.connect(exact, 1, str(earned["index"]))
            outcome = Outcome(attempt["port"])
            outcome.received = attempt["reply"].encode() if attempt["ok"] else b""
            outcome.closed_after = attempt["seconds"]
            return outcome
        try:
            inbound("18 ticket rebinding: ns/ab resumes with the ticket it earned offering ns/a's "
                    f"-> allow [spiffe://{TD}/ns/a]", exact, "strict", rebind,
                    rf"client identity {re.escape(spiffe('ns/ab'))} is not in the allow list "
                    rf"of inbound\.rules\[1\] \(we are {re.escape(ROOT_ID)}\)", "policy",
                    authz_peer=spiffe("ns/ab"))
        finally:
            tickets.close()

        # 13: older protocol versions, with a valid SVID so that only the version is wrong.
        versions = [("TLS 1.2", ssl.TLSVersion.TLSv1_2)]
        for label, version in (("TLS 1.1", ssl.TLSVersion.TLSv1_1),
                               ("TLS 1.0", ssl.TLSVersion.TLSv1)):
            if version_available(version):
                versions.append((label, version))
            else:
                log(f"{label} not attempted: the local OpenSSL will not send it")
        for label, version in versions:
            inbound(f"13 {label} client -> strict port", strict, "strict",
                    lambda version=version: tls_client(
                        strict, *certificates["ns-a"], minimum=version, maximum=version,
                        ciphers="ALL:@SECLEVEL=0"), OLD_VERSION_REASON, OLD_VERSION_CLASS)

        # 14: garbage. The first byte is not 22, so it cannot start a TLS record.
        garbage = b"\x00\xff" + os.urandom(510)
        inbound("14 garbage bytes -> strict port", strict, "strict",
                lambda: raw_client(strict, garbage), r"peer did not speak TLS", "not_tls")
        plain_verdict = Verdict("14 garbage bytes -> permissive port: passed as plaintext",
                                expect_refused=False,
                                note="by design (README 'permissive'): bytes that cannot start a "
                                     "ClientHello are handed to the application unchanged")
        verdicts.append(plain_verdict)
        try:
            before = metrics.read()
            outcome = raw_client(permissive, garbage)
            plain_verdict.refused = outcome.received == b""
            reply = f"{secret} {len(garbage)}\n".encode()
            plain_verdict.require(outcome.received == reply,
                                  f"the application did not get the {len(garbage)} bytes as "
                                  f"they were: {outcome}")
            pattern = (rf"info: plaintext inbound from {PEER}:{outcome.local_port} on "
                       rf":{permissive} \(mode permissive\): not TLS")
            line = log_line(server, pattern)
            plain_verdict.evidence.append(f"server: {line}")
            plain_verdict.judge("logged", line is not None, f"no line matching {pattern!r}")
            labels = dict(pid=server.popen.pid, direction="inbound", tls="false", port=permissive)
            wait_for(lambda: Metrics.total(metrics.read(), "tcp_open_total", **labels) >
                     Metrics.total(before, "tcp_open_total", **labels), 5, "tcp_open_total")
            got = Metrics.total(metrics.read(), "tcp_open_total", **labels) - \
                Metrics.total(before, "tcp_open_total", **labels)
            plain_verdict.evidence.append(f"tcp_open_total{{tls=false,port={permissive}}} +{got}")
            plain_verdict.judge("counted", got == 1, f"tcp_open_total{labels} moved by {got}")
        except (TestFailure, OSError) as error:
            plain_verdict.judge("counted", False, str(error))

        # 15: a real ClientHello cut in half, the connection then held open: on the strict port
        # the handshake timeout ends it; on the permissive port it must not become plaintext.
        # Meanwhile a meshed client is served on the same port: one stalled peer stalls nobody.
        def held(port, data, hold):
            sent = threading.Event()
            result = {}
            attacker = threading.Thread(target=lambda: result.update(
                outcome=raw_client(port, data, timeout=hold, sent=sent)), daemon=True)
            attacker.start()
            sent.wait(5)
            during = served(port)
            attacker.join(hold + 5)
            check("outcome" in result, f"the attacker on :{port} did not finish")
            result["outcome"].served_during = during
            return result["outcome"]

        half = client_hello()
        half = half[:len(half) // 2]
        hold = HANDSHAKE_TIMEOUT_MS / 1000 + 3
        inbound("15 truncated ClientHello, held open -> strict port", strict, "strict",
                lambda: held(strict, half, hold),
                rf"TLS handshake timed out after {HANDSHAKE_TIMEOUT_MS} ms", "timeout",
                bound=hold)
        hold = (DETECT_TIMEOUT_MS + HANDSHAKE_TIMEOUT_MS) / 1000 + 3
        inbound("15 truncated ClientHello, held open -> permissive port", permissive,
                "permissive", lambda: held(permissive, half, hold), r".+", None,
                bound=hold)
        log(f"inbound attacks done after {time.monotonic() - started:.1f}s")

        # --- Outbound: the meshed prober against rogue servers ------------------------------

        def outbound(name, rogue, reason, reason_class):
            verdict = Verdict(name)
            verdicts.append(verdict)
            port = rogue_ports[rogue]
            try:
                before = metrics.read()
                line = prober.request(port)
                verdict.judge("refused", line.startswith(f"{port} fail "),
                              f"the meshed client got application bytes: {line}")
                pattern = (rf"warn: refused outbound connection to {PEER}:{port} \(mode mtls\): "
                           rf"{reason}")
                found = log_line(prober.process, pattern)
                verdict.evidence.append(f"prober: {found}")
                verdict.judge("logged", found is not None,
                              f"no line matching {pattern!r}; the prober's lines for :{port}: "
                              f"{peer_lines(prober.process, port)}")
                metrics.judge_failure(verdict, before, prober.process.popen.pid, "outbound",
                                      reason_class)
            except (TestFailure, OSError) as error:
                verdict.judge("refused", False, f"{type(error).__name__}: {error}")

        line = prober.request(rogue_ports["ns-a"])
        check(line.startswith(f"{rogue_ports['ns-a']} ok ") and
              rogue_secret in bytes.fromhex(line.split()[2]).decode(errors="replace"),
              f"control: the meshed client refused a well-formed crafted SVID: {line}\n"
              f"{prober.process.stderr()[-2000:]}")
        outbound("1 plaintext server <- meshed client", "plaintext", r"peer did not speak TLS",
                 "not_tls")
        for name, cert, reason, reason_class in CERTIFICATE_ATTACKS:
            outbound(f"{name} <- meshed client", cert, reason, reason_class)
        for cert, path in (("ns-ab", "ns/ab"), ("ns-a-b", "ns/a/b")):
            outbound(f"12 expected identity spiffe://{TD}/ns/a refuses server {spiffe(path)}",
                     cert, rf"server identity {re.escape(spiffe(path))} does not match "
                           rf"{re.escape(spiffe('ns/a'))} expected by outbound\.rules\[0\]",
                     "policy")
        outbound("13 TLS 1.2-only server <- meshed client", "tls12", OLD_SERVER_REASON,
                 OLD_SERVER_CLASS)
        rogues.stop()
        ok, line = served()
        check(ok, f"the server stopped serving after all the attacks: {line}")
        log(f"outbound attacks done after {time.monotonic() - started:.1f}s")

        # --- Processes ----------------------------------------------------------------------
        verdicts.append(exec_handover(mesh, server_config))

        # --- The agent -----------------------------------------------------------------------
        verdicts.append(identity_theft(mesh, pki, sock, agent, metrics))
        verdicts.append(loose_key(mesh, sock, agent_state))
        verdicts.append(impostor_agent(mesh))
        verdicts.append(weak_intermediate(mesh))
        verdicts.extend(agent_attacks(mesh))
        verdicts += [metrics_amplification(mesh), metrics_squat(mesh)]
        verdicts.append(metrics_directory_swap(mesh))
        log(f"agent attacks done after {time.monotonic() - started:.1f}s")

        for verdict in verdicts:
            verdict.finish()
        figures = os.environ.get("MESHTLS_FIGURES_DIR")
        if figures:
            os.makedirs(figures, exist_ok=True)
            with open(os.path.join(figures, "attacks.json"), "w") as f:
                json.dump({"attacks": [v.figure() for v in verdicts]}, f, indent=2)
                f.write("\n")
        failed = [v for v in verdicts if not v.as_expected()]
        for v in verdicts:
            print(f"{'ok  ' if v.as_expected() else 'FAIL'} refused={v.refused} "
                  f"logged={v.logged} counted={v.counted}  {v.name}")
            for evidence in v.evidence:
                print(f"       {evidence}")
        check(not failed, f"{len(failed)} of {len(verdicts)} attacks not refused, logged and "
                          "counted as expected:\n" +
                          "\n".join(f"  {v.name}:\n    " + "\n    ".join(v.problems)
                                    for v in failed))
        print(f"{len(verdicts)} attacks refused, logged and counted "
              f"in {time.monotonic() - started:.1f}s")


def exec_handover(mesh, config):
    """19: a meshed server reads a request through TLS, then execs a handler with the connection
    as its stdout (inetd-style): the handler never writes to it in clear — its session follows it
    and its bytes go through TLS (tests/integration/test_exec_session.py tries every way of
    starting a program, test_exec_static_handler.py one that cannot be followed). With
    -Dwolfssl=system (no session export) the connection is reset at the exec instead, logged."""
    verdict = Verdict("19 handler exec'd on an mTLS connection writes nothing in clear",
                      no_counter=True, note="no counter by design: the connection is not refused, "
                                            "its session continues in the exec'd program (reset "
                                            "at the exec with -Dwolfssl=system)")
    try:
        server = test_exec_session.server_hands_over(mesh, config, "exec", None)
        verdict.judge("refused", True, "")
        expected = (r"mtls inbound from 127\.0\.0\.1:\d+ on fd 1: session continued after exec "
                    r"in /bin/sh" if SESSION_EXPORT else
                    r"reset at exec of /bin/sh, which would get it on fd 1: its TLS session "
                    r"cannot follow")
        line = log_line(server, expected)
        verdict.evidence.append(f"server: {line}")
        verdict.judge("logged", line is not None, "no line naming the exec'd program")
    except (TestFailure, OSError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict


def identity_theft(mesh, pki, sock, agent, metrics):
    """16: a process of uid 65534 sends a CSR claiming root's identity; the agent must issue
    the identity of the uid the kernel reports (no rule for 65534: uid/65534), never root's."""
    verdict = Verdict("16 uid 65534 asks the agent for root's identity")
    expected = spiffe(f"uid/{NOBODY}")
    try:
        key = pki.key("thief")
        csr = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=root",
                              "-addext", f"subjectAltName=URI:{ROOT_ID}", "-outform", "DER"],
                             capture_output=True, timeout=20, check=True).stdout
        # The socket's directories must be traversable by another user (the socket is 0666).
        os.chmod(mesh.dir, 0o711)
        before = metrics.read()
        result = subprocess.run([PYTHON, PEERS, "agent-request", sock], input=csr,
                                capture_output=True, timeout=30, user=NOBODY, group=NOBODY,
                                extra_groups=[], cwd="/", env=base_env())
        check(result.returncode == 0, f"the uid {NOBODY} client failed ({result.returncode}):\n"
                                      f"{result.stderr.decode(errors='replace')}")
        answer = json.loads(result.stdout)
        check(answer["uid"] == NOBODY, f"the client ran as uid {answer['uid']}")
        svid, told = answer["svid"], answer["id"]
        certificate = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-ext",
                                      "subjectAltName"], input=bytes.fromhex(svid["cert"]),
                                     capture_output=True, timeout=20).stdout.decode()
        verdict.judge("refused", svid["spiffe_id"] == expected and told["spiffe_id"] == expected,
                      f"uid {NOBODY} was given {svid['spiffe_id']!r} / told {told['spiffe_id']!r}"
                      f", expected {expected}")
        verdict.judge("refused", f"URI:{expected}" in certificate and ROOT_ID not in certificate
                      and "ns/root" not in certificate,
                      f"the issued certificate's SAN is not exactly {expected}: {certificate}")
        pattern = (rf"info: issued {re.escape(expected)} to pid \d+ uid {NOBODY} exe "
                   rf"\S*python3[.0-9]*, expires")
        verdict.judge("logged", log_line(agent, pattern) is not None,
                      f"no agent line matching {pattern!r}:\n{agent.stderr()[-2000:]}")
        verdict.judge("logged", not re.search(rf"issued {re.escape(ROOT_ID)} to pid \d+ uid "
                                              rf"{NOBODY}", agent.stderr()),
                      "the agent logs root's ID issued to uid 65534")
        after = metrics.read()
        issued = Metrics.total(after, "meshtls_agent_svids_issued_total") - \
            Metrics.total(before, "meshtls_agent_svids_issued_total")
        refused = Metrics.total(after, "meshtls_agent_requests_refused_total") - \
            Metrics.total(before, "meshtls_agent_requests_refused_total")
        verdict.judge("counted", issued == 1 and refused == 0,
                      f"meshtls_agent_svids_issued_total moved by {issued} (expected 1), "
                      f"requests_refused_total by {refused} (expected 0)")
    except (TestFailure, OSError, ValueError, KeyError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    finally:
        os.chmod(mesh.dir, 0o700)
    return verdict


def loose_key(mesh, sock, agent_state):
    """17: the modes the running agent keeps (socket 0666 by design: attestation decides; state
    directory 0700; ca.key 0600), and an agent refusing to start with a ca.key that group or
    others can read, or that belongs to another uid. No counter: the agent does not run."""
    verdict = Verdict("17 agent refuses a ca.key readable by group/others or owned by another uid",
                      no_counter=True, note="no counter by design: the agent refuses to start, "
                                            "so there is no process to count in")
    try:
        modes = {sock: 0o666, agent_state: 0o700, os.path.join(agent_state, "ca.key"): 0o600}
        for path, want in modes.items():
            got = stat.S_IMODE(os.lstat(path).st_mode)
            verdict.judge("refused", got == want, f"{path} has mode {got:04o}, expected {want:04o}")
        verdict.judge("refused", stat.S_ISSOCK(os.lstat(sock).st_mode), f"{sock} is not a socket")
        workdir = os.path.join(mesh.dir, "loose")
        for label, mode, owner in (("0644", 0o644, None), ("0640", 0o640, None),
                                   ("0604", 0o604, None), ("owned by 65534", 0o600, NOBODY)):
            shutil.rmtree(workdir, ignore_errors=True)
            state = os.path.join(workdir, "refused-state")
            os.makedirs(state, mode=0o700)
            for name in ("ca.crt", "ca.key"):
                shutil.copy2(os.path.join(agent_state, name), os.path.join(state, name))
            key = os.path.join(state, "ca.key")
            os.chmod(key, mode)
            if owner is not None:
                os.chown(key, owner, owner)
            status, stderr = run_agent_to_exit([], workdir)
            served = os.path.exists(os.path.join(workdir, "refused.sock"))
            verdict.judge("refused", status != 0 and not served,
                          f"ca.key {label}: the agent exited {status}, socket created: {served}")
            expected = (f"{key} belongs to uid {NOBODY}, not to the agent's uid 0" if owner else
                        f"{key} is accessible by group or others (mode {mode:04o}); the CA key "
                        f"must be 0600: run chmod 600 {key}")
            verdict.judge("logged", expected in stderr,
                          f"ca.key {label}: expected {expected!r} in:\n{stderr}")
        shutil.rmtree(workdir, ignore_errors=True)
    except (TestFailure, OSError, subprocess.SubprocessError) as error:
        verdict.judge("refused", False, f"{type(error).__name__}: {error}")
    return verdict


if __name__ == "__main__":
    main(test)
