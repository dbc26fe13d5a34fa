"""Agent gone past expiry: a process whose identity expired while the agent was away refuses to
make or accept mTLS connections — it never falls back to plaintext — and logs why (the
identity, when it expired, and that the agent is unreachable). When the agent comes back, the
next connection gets a fresh identity and succeeds.

Leaf lifetime 5 s; about 15 s in all.
"""

import subprocess
import time

from harness import PYTHON, Mesh, check, free_port, main, wait_for
from lifecycle_common import serve_payload, start_agent

LIFETIME = 5
PAYLOAD = 1024

CLIENT = ("import socket, sys\n"
          "port = int(sys.argv[1])\n"
          "for line in sys.stdin:\n"
          "    try:\n"
          "        with socket.create_connection(('127.0.0.1', port), timeout=5) as s:\n"
          "            s.sendall(b'GET /payload.bin HTTP/1.0\\r\\n\\r\\n')\n"
          "            data = b''\n"
          "            while True:\n"
          "                chunk = s.recv(65536)\n"
          "                if not chunk: break\n"
          "                data += chunk\n"
          "        body = data.partition(b'\\r\\n\\r\\n')[2]\n"
          "        print('ok' if len(body) == {payload} else f'short {{len(body)}}', flush=True)\n"
          "    except OSError as error:\n"
          "        print(type(error).__name__, flush=True)\n")


def test():
    with Mesh("expiry") as mesh:
        sock, _ = start_agent(mesh, ["--lifetime", str(LIFETIME)])
        agent = mesh.processes[-1]
        port = free_port()
        serve_payload(mesh, "server", port, PAYLOAD)
        client = mesh.meshed("client", [PYTHON, "-c", CLIENT.format(payload=PAYLOAD), str(port)],
                             stdin=subprocess.PIPE)

        def ask():
            before = client.stdout().count(b"\n")
            client.popen.stdin.write(b"go\n")
            client.popen.stdin.flush()
            wait_for(lambda: client.stdout().count(b"\n") > before, 20, "the client's answer")
            return client.stdout().decode().splitlines()[-1]

        check(ask() == "ok", f"first request failed:\n{client.stderr()}")
        agent.stop()
        time.sleep(LIFETIME + 1.5)  # every identity in play has expired now
        answer = ask()
        check(answer == "ConnectionRefusedError",
              f"with an expired identity and no agent the client got {answer!r}")
        log = client.stderr()
        check("refused outbound connection to 127.0.0.1:" in log and "expired at" in log and
              f"agent at {sock}" in log,
              f"no log line saying the identity expired and the agent is unreachable:\n{log}")

        start_agent(mesh, ["--lifetime", "60"], name="agent")
        deadline = time.monotonic() + 20
        answer = ask()
        while answer != "ok" and time.monotonic() < deadline:
            time.sleep(0.5)  # the client backs off between attempts at the agent
            answer = ask()
        check(answer == "ok", f"no recovery once the agent was back: {answer!r}\n{client.stderr()}")
        print("expired identity with the agent gone: refused with the reason; recovered after")


if __name__ == "__main__":
    main(test)
