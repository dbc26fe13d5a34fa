"""Waits that succeed leave errno as it was: poll(), select() and epoll_wait() on meshed
connections, while the fault preload makes libmeshtls's own transfers and waits inside them fail
with EINTR and EAGAIN.

A translated wait runs libmeshtls's own calls (the handshake's steps, reading a record ahead);
their errno is not the application's. CPython's socket module reads errno after calls that
succeed in places, and an EINTR left behind by a successful epoll_wait made the fault soak's
server drop edge-triggered events (test_soak_faults hung about one run in ten).
"""

import os

from harness import (ASAN_RUNTIME, BUILD, PYTHON, Mesh, base_env, check, free_port, main,
                     port_listening, wait_for)

FAULTS_LIBRARY = os.path.join(BUILD, "tests", "fault", "libmeshtls-preload-faults.so")
ROUNDS = 30

# A meshed server: for each connection, waits with poll, select and epoll_wait (through libc, errno
# preset to a sentinel) until a message has arrived, reading it a byte at a time; prints every
# successful wait whose errno changed.
SERVER = r'''
import ctypes, errno, select, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
SENTINEL = errno.EDOM
port, rounds = int(sys.argv[1]), int(sys.argv[2])
listener = socket.socket()
listener.bind(("127.0.0.1", port))
listener.listen(8)
print("listening", flush=True)

class PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

class EpollEvent(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("events", ctypes.c_uint32), ("data", ctypes.c_uint64)]

def wait_poll(fd):
    entry = PollFd(fd, select.POLLIN, 0)
    ctypes.set_errno(SENTINEL)
    return libc.poll(ctypes.byref(entry), 1, 2000), ctypes.get_errno()

def wait_select(fd):
    bits = (ctypes.c_ulong * 16)()
    bits[fd // 64] |= 1 << (fd % 64)
    timeout = (ctypes.c_long * 2)(2, 0)
    ctypes.set_errno(SENTINEL)
    return libc.select(fd + 1, bits, None, None, timeout), ctypes.get_errno()

epfd = libc.epoll_create1(0)
def wait_epoll(fd):
    event = EpollEvent(select.EPOLLIN, fd)
    libc.epoll_ctl(epfd, 1, fd, ctypes.byref(event))  # EPOLL_CTL_ADD (EEXIST after the first)
    out = (EpollEvent * 4)()
    ctypes.set_errno(SENTINEL)
    return libc.epoll_wait(epfd, out, 4, 2000), ctypes.get_errno()

waits = {"poll": wait_poll, "select": wait_select, "epoll_wait": wait_epoll}
changed = 0
succeeded = 0
for i in range(rounds):
    connection, _ = listener.accept()
    connection.setblocking(False)
    fd = connection.fileno()
    got = b""
    name = list(waits)[i % 3]
    while len(got) < 16:
        result, after = waits[name](fd)
        if result > 0:
            succeeded += 1
            if after != SENTINEL:
                changed += 1
                print("changed", name, after, flush=True)
        try:
            data = connection.recv(1)
        except BlockingIOError:
            continue
        if not data:
            break
        got += data
    libc.epoll_ctl(epfd, 2, fd, None)  # EPOLL_CTL_DEL
    connection.close()
print("done", succeeded, changed, flush=True)
'''

CLIENT = r'''
import socket, sys, time
for i in range(int(sys.argv[2])):
    client = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    for part in (b"0123", b"4567", b"89ab", b"cdef"):
        client.sendall(part)
        time.sleep(0.002)
    client.close()
'''


def test():
    check(os.path.exists(FAULTS_LIBRARY), f"{FAULTS_LIBRARY} was not built")
    with Mesh("errno-waits", log_level="warn") as mesh:
        mesh.start_agent()
        paths = {}
        for name, text in (("server", SERVER), ("client", CLIENT)):
            paths[name] = os.path.join(mesh.dir, f"{name}.py")
            with open(paths[name], "w") as f:
                f.write(text)
        env = base_env()
        env["LD_PRELOAD"] = ":".join(p for p in (ASAN_RUNTIME, FAULTS_LIBRARY) if p)
        env["MESHTLS_CONFIG"] = mesh.configs["agent"]
        # rate=1: a third of libmeshtls's own transfers and waits fail with EINTR or EAGAIN.
        env["MESHTLS_FAULTS"] = "seed=7,rate=3,kinds=eintr+eagain"
        port = free_port()
        server = mesh.spawn("server", [PYTHON, paths["server"], str(port), str(ROUNDS)], env=env)
        wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
                 "the server to listen")
        client = mesh.meshed("client", [PYTHON, paths["client"], str(port), str(ROUNDS)])
        check(client.wait(60) == 0, f"the client failed:\n{client.stderr()[-3000:]}")
        check(server.wait(60) == 0, f"the server failed:\n{server.stderr()[-3000:]}")
        lines = server.stdout().decode().splitlines()
        done = [line.split() for line in lines if line.startswith("done ")]
        check(len(done) == 1, f"the server did not finish: {lines}")
        succeeded, changed = int(done[0][1]), int(done[0][2])
        check(succeeded >= ROUNDS, f"only {succeeded} waits succeeded: {lines}")
        check(changed == 0, f"{changed} of {succeeded} successful waits changed errno: "
                            f"{[line for line in lines if line.startswith('changed')][:10]}")
        print(f"errno unchanged by {succeeded} successful poll/select/epoll_wait calls on meshed "
              "connections under injected EINTR and EAGAIN")


if __name__ == "__main__":
    main(test)
