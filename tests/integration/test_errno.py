"""Calls that succeed leave errno as it was, as the kernel's do: recv() of TLS data, and close()
of a meshed connection whose peer is gone (sending close_notify then fails inside libmeshtls
with ECONNRESET or EPIPE, which must not reach the application).

Programs read errno after calls that succeeded: sockperf's server dropped the next connection
accepted on the same fd because a successful close() had left ECONNRESET behind.
"""

import os
import socket
import struct

from harness import PYTHON, Mesh, check, free_port, main, port_listening, wait_for

# A meshed server: accepts two connections, reads one message from each, and once its client has
# reset calls close through libc, errno preset to a sentinel each time. The second round reads
# before the reset too, but closes only after it, like the first.
SERVER = r'''
import ctypes, errno, os, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
SENTINEL = errno.EDOM
listener = socket.socket()
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(4)
print("listening", flush=True)
for step in ("first", "second"):
    connection, _ = listener.accept()
    fd = connection.detach()
    buffer = ctypes.create_string_buffer(64)
    ctypes.set_errno(SENTINEL)
    n = libc.recv(fd, buffer, 64, 0)
    print(step, "recv", n, ctypes.get_errno(), flush=True)
    while not os.path.exists(sys.argv[2] + step):
        time.sleep(0.02)
    time.sleep(0.2)  # the reset has arrived
    ctypes.set_errno(SENTINEL)
    result = libc.close(fd)
    print(step, "close", result, ctypes.get_errno(), flush=True)
'''

# A meshed client: sends one message, waits until the server has read it, then resets.
CLIENT = r'''
import os, socket, struct, sys, time
client = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
client.sendall(b"hello")
time.sleep(0.5)
client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
client.close()
open(sys.argv[2], "w").close()
'''


def test():
    with Mesh("errno") as mesh:
        mesh.start_agent()
        port = free_port()
        paths = {}
        for name, text in (("server", SERVER), ("client", CLIENT)):
            paths[name] = os.path.join(mesh.dir, f"{name}.py")
            with open(paths[name], "w") as f:
                f.write(text)
        gone = os.path.join(mesh.dir, "gone-")
        server = mesh.meshed("server", [PYTHON, paths["server"], str(port), gone])
        wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
                 "the server to listen")
        for step in ("first", "second"):
            client = mesh.meshed(f"client-{step}", [PYTHON, paths["client"], str(port),
                                                    gone + step])
            check(client.wait(30) == 0, f"the client failed:\n{client.stderr()}")
        check(server.wait(30) == 0, f"the server failed:\n{server.stderr()}")

        lines = server.stdout().decode().split("\n")
        results = {tuple(line.split()[:2]): line.split()[2:] for line in lines[1:] if line}
        sentinel = str(33)  # EDOM
        for step, call in (("first", "recv"), ("first", "close"), ("second", "recv"),
                           ("second", "close")):
            result = results.get((step, call))
            check(result is not None and result[0] != "-1",
                  f"{call} failed in the {step} round: {result}\n{server.stderr()}")
            check(result[1] == sentinel,
                  f"a successful {call} changed errno to {result[1]} (was {sentinel}); "
                  f"server output: {lines}\n{server.stderr()}")
        print("errno unchanged by successful recv and close of meshed connections whose peer "
              "reset")


if __name__ == "__main__":
    main(test)
