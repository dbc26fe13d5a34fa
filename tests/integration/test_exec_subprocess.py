"""An established mTLS session follows its connection into programs a real Python server starts
with subprocess (a vfork child on Linux).

A meshed socketserver.TCPServer (unmodified standard library) reads a request line through TLS,
then hands the accepted connection to a new program:
  cat:   subprocess.run(["cat", FILE], stdout=connection): cat writes a file of 480 KB into it;
  talk:  subprocess.Popen([python, handler], stdin=connection, stdout=connection): the handler
         greets, reads one more line from the client and answers it; afterwards the server writes
         to its own copy, which the handler carried on: refused (ECONNRESET), logged, nothing sent;
  pass:  subprocess.run([python, handler, FD], pass_fds=[FD]): the same conversation on the fd
         passed as it is.
A meshed client checks every byte; a recording relay checks the wire (TLS 1.3 records only, none
of the text in clear); the handlers log the sessions they continued. A plaintext client is
refused.
With -Dwolfssl=system (no session export) each start resets the connection instead, logged with
the program's name and why: the client gets none of the new program's bytes, nor the parent's.
"""

import hashlib
import os
import socket

from harness import (NO_EXPORT_REASON, PYTHON, SESSION_EXPORT, Mesh, Relay, check, free_port,
                     main, negotiated_tls13, tls_records, complete_records_prefix, wait_for)
from test_exec_session import check_wire, write_config

SERVER = """
import socketserver, subprocess, sys
port, path, handler = int(sys.argv[1]), sys.argv[2], sys.argv[3]

class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = self.rfile.readline().strip().decode()
        connection = self.connection
        if request == "cat":
            subprocess.run(["cat", path], stdout=connection, check=True)
        elif request == "talk":
            subprocess.Popen([sys.executable, handler], stdin=connection, stdout=connection).wait()
            try:
                connection.sendall(b"PARENT-AFTER-HANDLER-9c1f\\n")
                print("parent wrote", flush=True)
            except OSError as error:
                print(f"parent write refused {error.errno}", flush=True)
        elif request == "pass":
            fd = connection.fileno()
            subprocess.run([sys.executable, handler, str(fd)], pass_fds=[fd], check=True)
        print(f"handled {request}", flush=True)

socketserver.TCPServer.allow_reuse_address = True
with socketserver.TCPServer(("127.0.0.1", port), Handler) as server:
    print("listening", flush=True)
    server.serve_forever()
"""

HANDLER = """
import os, sys
fd_in, fd_out = (int(sys.argv[1]),) * 2 if len(sys.argv) > 1 else (0, 1)
os.write(fd_out, b"handler ready\\n")
line = b""
while not line.endswith(b"\\n"):
    byte = os.read(fd_in, 1)
    if not byte:
        break
    line += byte
os.write(fd_out, b"handler read " + line)
"""

CLIENT = """
import hashlib, socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
with socket.create_connection(("127.0.0.1", port)) as connection:
    reader = connection.makefile("rb")
    connection.sendall(mode.encode() + b"\\n")
    if mode == "cat":
        data = reader.read()
        print("cat", len(data), hashlib.sha256(data).hexdigest(), flush=True)
    else:
        print(reader.readline().decode().strip(), flush=True)
        connection.sendall(b"more-line-4a7c\\n")
        print(reader.readline().decode().strip(), flush=True)
        print("end", repr(reader.read()), flush=True)
"""


def conversation(mesh, config, port, mode, expected):
    relay = Relay(port)
    client = mesh.meshed(f"client-{mode}", [PYTHON, "-c", CLIENT, str(relay.port), mode],
                         config=config)
    client.wait(60)
    relay.stop()
    out = client.stdout().decode(errors="replace")
    for line in expected:
        check(line in out, f"{mode}: the client did not get {line!r}: {out!r}\n"
                           f"{client.stderr()[-2000:]}")
    for marker in ("CAT-FILE-LINE", "handler ready", "more-line-4a7c", "PARENT-AFTER"):
        check_wire(relay, marker, mode)
    for down in relay.server_bytes:
        records = tls_records(complete_records_prefix(bytes(down)))
        check(negotiated_tls13(records), f"{mode}: the session is not TLS 1.3")
    return out


def refuse_plaintext(server, port):
    """Plaintext to a strict port: refused, no handler runs for it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"cat\n")
        try:
            data = plain.recv(4096)
        except ConnectionResetError:
            data = b""
    check(b"CAT-FILE-LINE" not in data, f"a plaintext client got the file: {data[:80]!r}")
    wait_for(lambda: "peer did not speak TLS" in server.stderr(), 10, "the plaintext refusal")
    print("plaintext client refused")


def test():
    with Mesh("exec-subprocess") as mesh:
        config = write_config(mesh, mesh.start_agent())
        os.chmod(mesh.dir, 0o755)
        path = os.path.join(mesh.dir, "file.txt")
        content = b"".join(b"CAT-FILE-LINE-%06d-9d1e\n" % i for i in range(20000))
        with open(path, "wb") as f:
            f.write(content)
        server_path = os.path.join(mesh.dir, "server.py")
        handler_path = os.path.join(mesh.dir, "handler.py")
        with open(server_path, "w") as f:
            f.write(SERVER)
        with open(handler_path, "w") as f:
            f.write(HANDLER)
        port = free_port()
        server = mesh.meshed("socketserver", [PYTHON, "-u", server_path, str(port), path,
                                              handler_path], config=config)
        wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
                 "the server to listen")
        check(server.popen.poll() is None, f"the server exited:\n{server.stderr()}")

        if not SESSION_EXPORT:
            for mode in ("cat", "talk", "pass"):
                out = conversation(mesh, config, port, mode, [])
                for text in ("cat 4", "handler", "PARENT-AFTER"):
                    check(text not in out, f"{mode}: the client got {out!r} after the reset")
                print(f"{mode}: reset at the new program's start (no session export)")
            wait_for(lambda: server.stderr().count(NO_EXPORT_REASON) >= 3, 10,
                     "the server's three reset lines")
            check(server.stderr().count("reset at exec of") >= 3,
                  f"the resets do not name the exec:\n{server.stderr()[-3000:]}")
            check("session continued after exec" not in server.stderr(),
                  f"a session continued without export:\n{server.stderr()[-3000:]}")
            refuse_plaintext(server, port)
            return
        conversation(mesh, config, port, "cat",
                     [f"cat {len(content)} {hashlib.sha256(content).hexdigest()}"])
        print("cat: the file arrived whole through the session cat continued")
        talk = conversation(mesh, config, port, "talk",
                            ["handler ready", "handler read more-line-4a7c", "end b''"])
        check("PARENT-AFTER" not in talk, f"the parent's stale copy wrote: {talk!r}")
        wait_for(lambda: b"handled talk" in server.stdout(), 10, "the talk handler to end")
        check(b"parent write refused 104" in server.stdout(),
              f"the parent's write after the handover was not refused: {server.stdout()!r}")
        check("gave this connection's TLS session to the program it started" in server.stderr(),
              f"no log line for the parent's refused write:\n{server.stderr()[-2000:]}")
        print("talk: Popen's handler carried the conversation on; the parent's copy failed closed")
        conversation(mesh, config, port, "pass",
                     ["handler ready", "handler read more-line-4a7c", "end b''"])
        print("pass_fds: the handler carried the conversation on, on the fd passed")

        wait_for(lambda: server.stderr().count("session continued after exec") >= 3, 10,
                 "the handlers' log lines")
        check("reset at exec" not in server.stderr(),
              f"a session was reset:\n{server.stderr()[-3000:]}")
        refuse_plaintext(server, port)


if __name__ == "__main__":
    main(test)
