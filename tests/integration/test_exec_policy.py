"""Policy survives exec: a connection accepted on a strict port whose rule allows only
spiffe://meshtls.local/ns/a/* and handed to an exec'd program (inetd-style, on stdin/stdout) is
still refused when the client's identity is not allowed — the new program decides again from the
same configuration. Before the fix, the adopted connection carried no allow list and the
disallowed client was served."""

import os

from harness import PYTHON, Mesh, check, free_port, main, wait_for

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdpeers.py")


def test():
    with Mesh("exec-policy") as mesh:
        sock = mesh.start_agent()  # every process here gets spiffe://meshtls.local/uid/<uid>
        port = free_port()
        config = os.path.join(mesh.dir, "allow.conf")
        with open(config, "w") as f:
            f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                    f'outbound = {{ loopback = "mtls"; }};\n'
                    f'inbound = {{ loopback = "strict"; rules = (\n'
                    f'  {{ port = {port}; mode = "strict"; '
                    f'allow = ["spiffe://meshtls.local/ns/a/*"]; }} ); }};\n')
        server = mesh.meshed("inetd-server", [PYTHON, PEERS, "inetd-server", str(port)],
                             config=config)
        wait_for(lambda: b"listening" in server.stdout(), 20, "the inetd server to listen")
        client = mesh.meshed("client", [PYTHON, PEERS, "line-client", str(port), "not allowed"],
                             config=config)
        client.wait(30)
        check(b"NOT ALLOWED" not in client.stdout(),
              f"the exec'd service served a client its allow list refuses:\n{client.stdout()!r}")
        wait_for(lambda: "is not in the allow list of inbound.rules[0]" in server.stderr(), 20,
                 "the refusal line from the exec'd service")
        print("exec'd service kept the port's allow list and refused the client")


if __name__ == "__main__":
    main(test)
