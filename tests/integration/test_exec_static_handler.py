"""A session that cannot follow its connection into a new program is reset before that program
can write to it.

An inetd-style meshed server reads a request line through TLS, then starts a handler with the
connection on stdin and stdout: by fork and exec, by subprocess.run (a vfork child's exec), or by
os.posix_spawn with dup2 file actions. The handler is a static busybox: no preload loads into
it, so it could only write to the connection in clear. The exec hook resets the connection first:
no byte of the handler's reply is on the wire (a recording relay sees TLS records only), the
client sees a reset, and the server logs one line naming the program, the fd, the peer and why.

The same holds for a connection handed over before its handshake (inetd's accept-and-exec: the
handler would answer in clear), and for a dynamic handler the loader cannot load libmeshtls into:
a server that drops to uid 65534 before exec (as Python's http.server does for CGI scripts) with
libmeshtls in a directory only root can read.
"""

import os
import re
import shutil

from harness import BUILD, MESHTLS, PYTHON, Mesh, Relay, check, free_port, main, wait_for
from test_exec_session import check_wire, write_config

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdpeers.py")
BUSYBOX = "/bin/busybox"


def static_handler(mesh, config, how, meshtls=MESHTLS):
    marker = f"STATIC-HANDLER-{how.upper()}-IN-CLEAR-4e7a"
    port = free_port()
    server = mesh.meshed(f"inetd-{how}", [PYTHON, PEERS, "handler-server", str(port), how,
                                          marker], config=config, meshtls=meshtls)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the server to listen")
    check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")
    relay = Relay(port, propagate_reset=True)
    client = mesh.meshed(f"client-{how}", [PYTHON, "-c", f"""
import socket
# A reset during the handshake fails the meshed connect itself (ECONNREFUSED).
try:
    with socket.create_connection(("127.0.0.1", {relay.port})) as connection:
        connection.sendall(b"request\\n")
        data = connection.recv(4096)
        print("received", data)
except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
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
    # A session that started is an "mtls connection"; one refused before its handshake is not.
    why = (r"uid 65534 cannot read \S+libmeshtls-preload\.so \(Permission denied\), so the "
           r"loader would start it without libmeshtls\." if "nobody" in how else r".*static.*")
    line = (r"(mtls connection|refused) inbound (connection )?from 127\.0\.0\.1:\d+ on :\d+ "
            r"\(mode strict\): reset at (exec|posix_spawn) of /(usr/)?bin/(busybox|sh), which "
            rf"would get it on fd [01]: {why} Its bytes would leave in clear\.")
    wait_for(lambda: re.search(line, server.stderr()), 10, f"the {how} server's log line")
    lines = [text for text in server.stderr().splitlines() if "reset at " in text]
    check(len(lines) == 1, f"{how}: not one log line for the reset: {lines}")
    print(f"static handler ({how}): reset before it could write; nothing in clear on the wire")


def test():
    check(os.path.exists(BUSYBOX), f"{BUSYBOX} missing (packaging/install-deps.sh: busybox-static)")
    with Mesh("exec-static") as mesh:
        config = write_config(mesh, mesh.start_agent())
        for how in ("static-exec", "static-subprocess", "static-spawn", "fresh-static-exec",
                    "fresh-static-spawn"):
            static_handler(mesh, config, how)
        # libmeshtls where only root can read it; the agent's socket and the configuration where
        # uid 65534 can reach them.
        private = os.path.join(mesh.dir, "private")
        os.mkdir(private, 0o700)
        for path in (MESHTLS, os.path.join(BUILD, "libmeshtls-preload.so")):
            shutil.copy2(path, private)
        os.chmod(mesh.dir, 0o755)
        os.chmod(config, 0o644)
        for how in ("nobody-exec", "fresh-nobody-exec"):
            static_handler(mesh, config, how, meshtls=os.path.join(private, "meshtls"))


if __name__ == "__main__":
    main(test)
