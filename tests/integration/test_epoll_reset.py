"""A peer's reset after the handshake reaches an epoll server in every trigger mode, also when
the fault preload injects EAGAIN into libmeshtls's reads.

An epoll server (level-triggered, EPOLLET, or EPOLLONESHOT re-armed after every event, as soak.py
uses them) echoes one message per connection; the client then resets every connection (SO_LINGER
0 and _exit: an RST, no close_notify). Each connection must end in the server with ECONNRESET
within seconds. Under EPOLLET the RST is the connection's last edge: an EAGAIN after it would leave
the server waiting forever. The kernel never says EAGAIN on a reset socket, and the fault preload
must not either (tests/fault/fault.c); it did, and the fault soak (test_soak_faults.py) then found
a connection the server never closed, about one run in five.
"""

import os
import sys

from harness import (ASAN_RUNTIME, BUILD, PYTHON, Mesh, base_env, check, free_port, main,
                     port_listening, wait_for)

FAULTS_LIBRARY = os.path.join(BUILD, "tests", "fault", "libmeshtls-preload-faults.so")
CONNECTIONS = 40

# Serves until `count` connections have ended; prints how each ended (errno, 0 for EOF).
SERVER = r'''
import select, socket, sys
port, trigger, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
masks = {"level": select.EPOLLIN, "edge": select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET,
         "oneshot": select.EPOLLIN | select.EPOLLONESHOT}
listener = socket.socket()
listener.bind(("127.0.0.1", port))
listener.listen(64)
listener.setblocking(False)
epoll = select.epoll()
epoll.register(listener.fileno(), select.EPOLLIN)
connections = {}
ended = 0
print("listening", flush=True)
while ended < count:
    for fd, events in epoll.poll(1.0):
        if fd == listener.fileno():
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                continue
            sock.setblocking(False)
            connections[sock.fileno()] = sock
            epoll.register(sock.fileno(), masks[trigger])
            continue
        sock = connections[fd]
        end = None
        while end is None:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            except OSError as error:
                end = error.errno
                break
            if not data:
                end = 0
                break
            sock.send(data)
            if trigger != "edge":
                break  # level and one-shot: the next event says whether more is there
        if end is None:
            if trigger == "oneshot":
                epoll.modify(fd, masks[trigger])
            continue
        epoll.unregister(fd)
        del connections[fd]
        sock.close()
        ended += 1
        print("ended", end, flush=True)
'''

# Echoes one message on each of `count` connections, then resets them all at once.
CLIENT = r'''
import os, socket, struct, sys
port, count = int(sys.argv[1]), int(sys.argv[2])
sockets = []
for i in range(count):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"ping")
    reply = b""
    while len(reply) < 4:
        reply += sock.recv(4 - len(reply))
    assert reply == b"ping", reply
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sockets.append(sock)
print("exchanged", count, flush=True)
os._exit(0)  # the kernel closes every socket with an RST; libmeshtls sends no close_notify
'''


def run(mesh, trigger, faults, index):
    name = f"{trigger}-{'eagain' if faults else 'clean'}"
    scripts = []
    for kind, text in (("server", SERVER), ("client", CLIENT)):
        path = os.path.join(mesh.dir, f"{kind}.py")
        with open(path, "w") as f:
            f.write(text)
        scripts.append(path)
    env = base_env()
    env["LD_PRELOAD"] = ":".join(p for p in (ASAN_RUNTIME, FAULTS_LIBRARY) if p)
    env["MESHTLS_CONFIG"] = mesh.configs["agent"]
    # rate=1: a third of the server's reads get EAGAIN (with kinds=eagain, nothing else).
    env["MESHTLS_FAULTS"] = f"seed={index + 1},rate={1 if faults else 0},kinds=eagain"
    port = free_port()
    server = mesh.spawn(f"server-{name}",
                        [PYTHON, scripts[0], str(port), trigger, str(CONNECTIONS)], env=env)
    wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
             f"the {name} server to listen")
    client = mesh.meshed(f"client-{name}", [PYTHON, scripts[1], str(port), str(CONNECTIONS)])
    check(client.wait(60) == 0, f"{name}: the client failed:\n{client.stderr()[-3000:]}")
    try:
        wait_for(lambda: server.popen.poll() is not None, 10, f"the {name} server to finish")
    except Exception:  # reported below with what the server saw
        pass
    ends = [line.split()[1] for line in server.stdout().decode().splitlines()
            if line.startswith("ended ")]
    check(len(ends) == CONNECTIONS,
          f"{name}: the server saw {len(ends)} of {CONNECTIONS} resets within 10 s; the others "
          f"never woke its epoll_wait:\n{server.stderr()[-3000:]}")
    check(set(ends) == {"104"}, f"{name}: connections ended with {sorted(set(ends))}, not only "
                                f"ECONNRESET (104)")
    check(server.wait(10) == 0, f"{name}: the server failed:\n{server.stderr()[-3000:]}")
    return name


def test():
    check(os.path.exists(FAULTS_LIBRARY), f"{FAULTS_LIBRARY} was not built")
    done = []
    with Mesh("epoll-reset", log_level="warn") as mesh:
        mesh.start_agent()
        for index, (trigger, faults) in enumerate(
                (t, f) for f in (False, True) for t in ("level", "edge", "oneshot")):
            done.append(run(mesh, trigger, faults, index))
    print(f"every reset reached the epoll server ({CONNECTIONS} connections each): "
          f"{', '.join(done)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main(test)
