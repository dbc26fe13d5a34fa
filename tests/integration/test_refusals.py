"""A strict server refuses a plaintext client and a client whose certificate comes from another
CA, logs why (peer, port, mode, reason), and keeps serving meshed clients."""

import os
import subprocess

from harness import Mesh, check, free_port, http_client, main, random_token


def fetch(mesh, name, port, agent="agent", meshed=True):
    argv = http_client(f"http://127.0.0.1:{port}/index.txt")
    client = mesh.meshed(name, argv, agent=agent) if meshed else mesh.spawn(name, argv)
    return client, client.wait(30)


def test():
    with Mesh("refusals") as mesh:
        mesh.start_agent()
        mesh.start_agent("foreign")  # a second agent: a different CA, the same trust domain
        root = os.path.join(mesh.dir, "www")
        os.mkdir(root)
        secret = random_token()
        with open(os.path.join(root, "index.txt"), "w") as f:
            f.write(secret)
        port = free_port()
        server = mesh.http_server("server", port, root)

        plain, status = fetch(mesh, "plain-curl", port, meshed=False)
        check(status != 0, "a plaintext client got an answer from a strict server")
        check(secret.encode() not in plain.stdout(), "plaintext client saw the file")
        check(f"refused inbound connection from 127.0.0.1:" in server.stderr() and
              f"on :{port} (mode strict): peer did not speak TLS" in server.stderr(),
              f"no refusal line for the plaintext client:\n{server.stderr()}")

        foreign, status = fetch(mesh, "foreign-curl", port, agent="foreign")
        check(status != 0, "a client with a foreign CA's certificate got an answer")
        check(secret.encode() not in foreign.stdout(), "foreign client saw the file")
        check(f"refused outbound connection to 127.0.0.1:{port} (mode mtls): peer certificate "
              "not issued by a trusted anchor" in foreign.stderr(),
              f"the foreign client does not say why:\n{foreign.stderr()}")
        check(server.stderr().count("refused inbound connection") >= 2,
              f"the server did not log the foreign client's refusal:\n{server.stderr()}")

        good, status = fetch(mesh, "good-curl", port)
        check(status == 0 and good.stdout() == secret.encode(),
              f"the server stopped serving meshed clients (curl {status}):\n{good.stderr()}")
        check(server.popen.poll() is None, "the server died")
        print("plaintext and foreign-CA clients refused; meshed client served")


if __name__ == "__main__":
    main(test)
