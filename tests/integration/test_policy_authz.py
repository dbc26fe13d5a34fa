"""Authorization by identity, end to end: allow lists on inbound ports and the expected server
identity of outbound rules.

The agent gives distinct identities by executable: copies of the Python interpreter at different
paths are different executables, so each gets its own SPIFFE ID (never chosen by the caller).

Inbound: a strict port whose rule (inbound.rules[1]: a rule for another port comes first, so the
index in the log line is checked) allows "spiffe://meshtls.local/ns/a/*":
  - ns/a/x and ns/a/x/y are served (the pattern covers one or more segments below ns/a);
  - ns/ab (a sibling sharing the prefix), ns/a itself, and ns/b/sa/other are refused during the
    handshake, each with one log line naming both identities and "the allow list of
    inbound.rules[1]", and they receive nothing;
  - the server keeps serving an allowed client afterwards.
A permissive port with the same allow list refuses a disallowed mesh client but still passes a
plaintext (not meshed) client: the allow list applies to mesh identities.

Outbound: a client whose outbound.rules[1] says the server must be
"spiffe://meshtls.local/other/*" refuses the real server (ns/server/sa/web) and logs both IDs and
"outbound.rules[1]"; the same client with identity "spiffe://meshtls.local/ns/server/*" connects.
"""

import os
import re

from harness import PYTHON, Mesh, check, free_port, main
from policy_common import (copy_python, peer, run, spiffe, start_server, wait_log,
                           write_workload_config)

PORT_RE = r"127\.0\.0\.1:\d+"
IDENTITIES = {  # executable name in <mesh>/bin -> identity path
    "svc-a-x": "ns/a/x",
    "svc-a-x-y": "ns/a/x/y",
    "svc-a": "ns/a",
    "svc-ab": "ns/ab",
    "svc-b": "ns/b/sa/other",
}


def test():
    with Mesh("policy-authz") as mesh:
        bin_dir = os.path.join(mesh.dir, "bin")
        rules = "".join(f'  {{ exe = "{bin_dir}/{name}"; id = "{path}"; }},\n'
                        for name, path in IDENTITIES.items())
        mesh.start_agent(config=f'rules = (\n{rules}'
                                '  { exe = "/usr/bin/python3*"; id = "ns/server/sa/web"; }\n);\n')
        programs = {name: copy_python(mesh, name) for name in IDENTITIES}
        server_id = spiffe("ns/server/sa/web")

        other_port, strict_port, permissive_port = free_port(), free_port(), free_port()
        allow = 'allow = ["spiffe://meshtls.local/ns/a/*"];'
        server_config = write_workload_config(mesh, "server", f"""
inbound = {{
    loopback = "strict";
    rules = (
        {{ port = {other_port}; mode = "strict"; allow = ["spiffe://meshtls.local/ns/z"]; }},
        {{ port = {strict_port}; mode = "strict"; {allow} }},
        {{ port = {permissive_port}; mode = "permissive"; {allow} }}
    );
}};
""")
        client_config = write_workload_config(mesh, "client",
                                              'outbound = { loopback = "mtls"; };\n')
        server = start_server(mesh, "server",
                              peer(PYTHON, "serve", "--echo", strict_port,
                                   "--echo", permissive_port),
                              [strict_port, permissive_port], config=server_config)

        def echo(name, program, port, meshed=True, config=client_config):
            return run(mesh, f"{name}-{port}", peer(program, "echo-client", port, 20000),
                       config=config, meshed=meshed)

        # Allowed: one and two segments below ns/a.
        for name in ("svc-a-x", "svc-a-x-y"):
            status, out, err = echo(name, programs[name], strict_port)
            check(status == 0 and out.startswith("ok "),
                  f"{name} ({spiffe(IDENTITIES[name])}) is allowed but was not served:\n{err}")
            wait_log(server, rf"mtls inbound from {PORT_RE} on :{strict_port}: peer "
                             rf"{spiffe(IDENTITIES[name])}, TLSv1\.3")

        # Refused in the handshake: the sibling with a shared prefix, the parent, another namespace.
        for name in ("svc-ab", "svc-a", "svc-b"):
            client_id = spiffe(IDENTITIES[name])
            status, out, err = echo(name, programs[name], strict_port)
            check(status != 0 and "ok" not in out,
                  f"{name} ({client_id}) is not allowed but got an echo:\n{out}")
            wait_log(server, rf"warn: refused inbound connection from {PORT_RE} on :{strict_port} "
                             rf"\(mode strict\): client identity {client_id} is not in the allow "
                             rf"list of inbound\.rules\[1\] \(we are {server_id}\)")
            # TLS 1.3: the client finishes first, then reads the server's bad_certificate alert.
            check(re.search(rf"warn: .*outbound to 127\.0\.0\.1:{strict_port} \(mode mtls\)", err),
                  f"{name}: the refused client logs no failure:\n{err}")

        # The server keeps serving.
        status, out, err = echo("svc-a-x-again", programs["svc-a-x"], strict_port)
        check(status == 0 and out.startswith("ok "),
              f"the server stopped serving allowed clients after refusals:\n{err}")

        # Permissive with an allow list: a disallowed mesh identity is refused, plaintext passes.
        status, out, err = echo("svc-ab", programs["svc-ab"], permissive_port)
        check(status != 0 and "ok" not in out, "ns/ab got an echo on the permissive port")
        wait_log(server, rf"refused inbound connection from {PORT_RE} on :{permissive_port} "
                         rf"\(mode permissive\): client identity {spiffe('ns/ab')} is not in the "
                         r"allow list of inbound\.rules\[2\]")
        status, out, err = echo("svc-a-x", programs["svc-a-x"], permissive_port)
        check(status == 0 and out.startswith("ok "),
              f"ns/a/x refused on the permissive port:\n{err}")
        status, out, err = echo("plain", PYTHON, permissive_port, meshed=False)
        check(status == 0 and out.startswith("ok "),
              f"a plaintext client was not passed on the permissive port:\n{err}")

        # Outbound: the server's identity must match the rule's pattern.
        def outbound_config(name, pattern):
            return write_workload_config(mesh, name, f"""
outbound = {{
    loopback = "mtls";
    rules = (
        {{ to = "192.0.2.0/24"; mode = "plain"; }},
        {{ to = "127.0.0.1"; ports = [{strict_port}]; mode = "mtls"; identity = "{pattern}"; }}
    );
}};
""")
        wrong = outbound_config("expects-other", "spiffe://meshtls.local/other/*")
        status, out, err = echo("expects-other", programs["svc-a-x"], strict_port, config=wrong)
        check(status != 0 and "ok" not in out, "a client expecting other/* talked to the server")
        expected_line = (f"refused outbound connection to 127.0.0.1:{strict_port} (mode mtls): "
                         f"server identity {server_id} does not match "
                         "spiffe://meshtls.local/other/* expected by outbound.rules[1] "
                         f"(we are {spiffe('ns/a/x')})")
        check(expected_line in err, f"no refusal line naming both IDs and the rule; expected\n"
                                    f"  {expected_line}\nin\n{err}")
        right = outbound_config("expects-server", "spiffe://meshtls.local/ns/server/*")
        status, out, err = echo("expects-server", programs["svc-a-x"], strict_port, config=right)
        check(status == 0 and out.startswith("ok "),
              f"a client expecting ns/server/* was refused by its own rule:\n{err}")
        check(server.popen.poll() is None, "the server died")
        print("allow list: ns/a/x and ns/a/x/y served; ns/ab, ns/a, ns/b refused with the rule "
              "named; permissive passes plaintext; outbound expected identity enforced")


if __name__ == "__main__":
    main(test)
