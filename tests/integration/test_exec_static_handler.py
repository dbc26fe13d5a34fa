"""A session that cannot follow its connection into a new program is reset before that program
can write to it.

An inetd-style meshed server reads a request line through TLS, then starts a handler with the
connection on stdin and stdout: by fork and exec, by subprocess.run (a vfork child's exec), or by
os.posix_spawn with dup2 file actions. The handler is a static busybox: no preload loads into
it, so it could only write to the connection in clear. The exec hook resets the connection first:
no byte of the handler's reply is on the wire (a recording relay sees TLS records only), the
client sees a reset, and the server logs one line naming the program, the fd, the peer and why.
"""

import os
import re

from harness import PYTHON, Mesh, Relay, check, free_port, main, wait_for
from test_exec_session import check_wire, write_config

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdpeers.py")
BUSYBOX = "/bin/busybox"


def static_handler(mesh, config, how):
    marker = f"STATIC-HANDLER-{how.upper()}-IN-CLEAR-4e7a"
    port = free_port()
    server = mesh.meshed(f"inetd-{how}", [PYTHON, PEERS, "handler-server", str(port), how,
                                          marker], config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the server to listen")
    check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")
    relay = Relay(port, propagate_reset=True)
    client = mesh.meshed(f"client-{how}", [PYTHON, "-c", f"""
import socket
with socket.create_connection(("127.0.0.1", {relay.port})) as connection:
    connection.sendall(b"request\\n")
    try:
        data = connection.recv(4096)
        print("received", data)
    except ConnectionResetError:
        print("reset")
"""], config=config)
    client.wait(30)
    wait_for(lambda: f"handed over ({how})".encode() in server.stdout(), 20,
             "the server to hand the connection over")
    relay.stop()
    check(b"reset" in client.stdout() and marker.encode() not in client.stdout(),
          f"{how}: the client did not see a reset: {client.stdout()!r}\n{client.stderr()[-2000:]}")
    check_wire(relay, marker, f"static handler ({how})")
    check("written" not in server.stderr(),
          f"{how}: the static handler's write succeeded:\n{server.stderr()[-2000:]}")
    line = (r"mtls connection inbound from 127\.0\.0\.1:\d+ on :\d+ \(mode strict\): reset at "
            r"(exec|posix_spawn) of /(usr/)?bin/busybox, which would get it on fd [01]: .*static.* "
            r"Its bytes would leave in clear\.")
    wait_for(lambda: re.search(line, server.stderr()), 10, f"the {how} server's log line")
    lines = [text for text in server.stderr().splitlines() if "reset at " in text]
    check(len(lines) == 1, f"{how}: not one log line for the reset: {lines}")
    print(f"static handler ({how}): reset before it could write; nothing in clear on the wire")


def test():
    check(os.path.exists(BUSYBOX), f"{BUSYBOX} missing (packaging/install-deps.sh: busybox-static)")
    with Mesh("exec-static") as mesh:
        config = write_config(mesh, mesh.start_agent())
        for how in ("static-exec", "static-subprocess", "static-spawn"):
            static_handler(mesh, config, how)


if __name__ == "__main__":
    main(test)
