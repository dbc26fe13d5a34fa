"""A client that sends plaintext and resets the connection before the server's accept() returns
never gets its bytes to a strict or permissive server as plaintext.

The accepted socket then has no peer address (getpeername fails with ENOTCONN) although the
bytes sent before the reset can still be read. The server's first read must fail with
ECONNRESET and the refusal be logged; on a plain port the socket is the kernel's, untouched.
"""

import os
import socket
import struct

from harness import PYTHON, Mesh, check, free_port, main, port_listening, wait_for

# Listens on each port, waits until told that every client has come and gone, then accepts one
# connection per port and reports what its first read gives.
SERVER = r'''
import os, socket, sys, time
ports = [int(p) for p in sys.argv[2:]]
listeners = []
for port in ports:
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    listeners.append(listener)
print("listening", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.02)
for port, listener in zip(ports, listeners):
    connection, _ = listener.accept()
    connection.settimeout(10)
    try:
        print(port, "read", connection.recv(100).hex(), flush=True)
    except OSError as error:
        print(port, "error", error.errno, flush=True)
'''

PAYLOAD = b"GET /secret-before-reset HTTP/1.0\r\n\r\n"


def test():
    with Mesh("reset-before-accept") as mesh:
        sock = mesh.start_agent()
        strict, permissive, plain = free_port(), free_port(), free_port()
        config = os.path.join(mesh.dir, "server.conf")
        with open(config, "w") as f:
            f.write(f"""agent_socket = "{sock}";
log_level = "info";
inbound = {{ loopback = "strict"; rules = (
    {{ port = {strict}; mode = "strict"; }},
    {{ port = {permissive}; mode = "permissive"; }},
    {{ port = {plain}; mode = "plain"; }}
); }};
""")
        script = os.path.join(mesh.dir, "server.py")
        with open(script, "w") as f:
            f.write(SERVER)
        go = os.path.join(mesh.dir, "go")
        server = mesh.meshed("server", [PYTHON, script, go, str(strict), str(permissive),
                                        str(plain)], config=config)
        wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
                 "the server to listen")
        check(all(port_listening(p) for p in (strict, permissive, plain)),
              f"the server does not listen:\n{server.stderr()}")

        for port in (strict, permissive, plain):
            client = socket.create_connection(("127.0.0.1", port))
            client.sendall(PAYLOAD)
            # SO_LINGER with a zero timeout: close() sends a reset instead of a FIN.
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        open(go, "w").close()
        check(server.wait(30) == 0, f"the server failed:\n{server.stderr()}")

        results = dict(line.split(" ", 1) for line in server.stdout().decode().splitlines()[1:])
        for port, mode in ((strict, "strict"), (permissive, "permissive")):
            check(results.get(str(port)) == "error 104",
                  f"{mode} port: the first read gave {results.get(str(port))!r}, not ECONNRESET "
                  f"(104); the plaintext must never reach the application")
            check(f"on :{port} (mode {mode}): peer reset the connection before accept() "
                  "returned" in server.stderr(), f"{mode} port: no refusal logged:\n"
                  f"{server.stderr()}")
        # A plain port is never touched: whatever the kernel gives, nothing is logged for it.
        check(f"on :{plain} " not in server.stderr(),
              f"the plain port was handled by libmeshtls:\n{server.stderr()}")
        print(f"strict and permissive: ECONNRESET and a refusal logged; plain port: "
              f"{results.get(str(plain))}")


if __name__ == "__main__":
    main(test)
