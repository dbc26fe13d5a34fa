"""Plain-socket servers that exercise file-descriptor and process semantics; they know nothing of
TLS. Each serves one connection per client and prints "listening" once ready.

  fdpeers.py fork-server PORT        accept; fork; the CHILD serves (reads a line, replies with it
                                     upper-cased); the PARENT closes its copy at once.
  fdpeers.py dup-server PORT         accept; dup() the socket, close the original, serve on the dup;
                                     then dup2() it onto a fresh fd number and serve a second line.
  fdpeers.py sendfile-server PORT FILE   accept; socket.sendfile(FILE) (os.sendfile underneath),
                                     then close.
  fdpeers.py fionread-server PORT    accept; wait until FIONREAD reports bytes, reply with the
                                     count FIONREAD gave and the bytes read.
  fdpeers.py inetd-server PORT       accept; fork; the child puts the socket on stdin and stdout
                                     and execs a new program that upper-cases one line from stdin
                                     to stdout (inetd-style); the parent closes its copy.
  fdpeers.py handler-server PORT HOW TEXT   accept; read one line (the TLS session has started);
                                     then hand the connection to a program that writes TEXT to
                                     it, started HOW: "exec" (fork, dup2 onto stdout, exec sh),
                                     "subprocess" (subprocess.run with stdout=the connection),
                                     "system" (set inheritable, os.system writing to its fd;
                                     prints the inheritable flag the program reads back),
                                     "posix-spawn" (os.posix_spawn with a dup2 file action),
                                     "static-exec" (fork, dup2 onto stdin and stdout, exec a
                                     static busybox sh, which no preload follows; prints what
                                     its write to stdout returned, "written" or "failed"),
                                     "static-subprocess" (the same busybox started by
                                     subprocess.run with stdin and stdout the connection: a
                                     vfork child), "static-spawn" (by os.posix_spawn with
                                     dup2 file actions onto stdin and stdout), "nobody-exec"
                                     (as static-exec, but the child drops to uid 65534 and
                                     execs the dynamic /bin/sh, for a libmeshtls that uid cannot
                                     read). A "fresh-" prefix: hand the connection over at once,
                                     before its handshake, without reading the line.
  fdpeers.py pass-server PORT WHEN TEXT   accept; read one line first unless WHEN is "fresh";
                                     then pass the connection to a child process over a Unix
                                     socket (SCM_RIGHTS; WHEN "tight": behind another control
                                     message, unpadded; "mmsg": with sendmmsg), which writes
                                     TEXT to whatever it receives; prints "passed" or
                                     "refused ERRNO".
  fdpeers.py line-client PORT LINE...   for each LINE: send it, read one reply line, print it.
  fdpeers.py mmsg-client PORT LINE   send LINE and its newline as two messages of one sendmmsg,
                                     print the counts sent, then the reply line.
  fdpeers.py read-client PORT        read to EOF, print sha256 and length.
"""

import array
import ctypes
import errno
import fcntl
import hashlib
import os
import socket
import struct
import subprocess
import sys
import termios
import time


def listen(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    print("listening", flush=True)
    return listener


def serve_line(connection):
    reader = connection.makefile("rb")
    line = reader.readline()
    connection.sendall(line.upper())
    return line


def fork_server(port):
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        child = os.fork()
        if child == 0:
            listener.close()
            serve_line(connection)
            connection.close()
            os._exit(0)
        connection.close()  # the parent's copy: must not end the child's session
        os.waitpid(child, 0)


def dup_server(port):
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        copy = socket.socket(fileno=os.dup(connection.fileno()))
        connection.close()
        serve_line(copy)
        target = os.open("/dev/null", os.O_RDONLY)  # a fresh fd number for dup2 to replace
        os.dup2(copy.fileno(), target)
        copy.close()
        moved = socket.socket(fileno=target)
        serve_line(moved)
        moved.close()


def sendfile_server(port, path):
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        with open(path, "rb") as f:
            connection.sendfile(f)
        connection.close()


def fionread_server(port):
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        count = array.array("i", [0])
        deadline = time.monotonic() + 10
        while count[0] == 0 and time.monotonic() < deadline:
            fcntl.ioctl(connection.fileno(), termios.FIONREAD, count)
            time.sleep(0.01)
        data = connection.recv(65536)
        connection.sendall(f"{count[0]} {len(data)}\n".encode())
        connection.close()


INETD_SERVICE = ("import sys\n"
                 "line = sys.stdin.buffer.readline()\n"
                 "sys.stdout.buffer.write(b'inetd: ' + line.upper())\n"
                 "sys.stdout.buffer.flush()\n")


def inetd_server(port):
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        child = os.fork()
        if child == 0:
            os.dup2(connection.fileno(), 0)
            os.dup2(connection.fileno(), 1)
            connection.close()
            listener.close()
            os.execv(sys.executable, [sys.executable, "-c", INETD_SERVICE])
        connection.close()
        os.waitpid(child, 0)


def handler_server(port, how, text):
    listener = listen(port)
    label, fresh, how = how, how.startswith("fresh-"), how.removeprefix("fresh-")
    while True:
        connection, _ = listener.accept()
        if not fresh:
            connection.makefile("rb").readline()
        fd = connection.fileno()
        command = ["/bin/sh", "-c", f"echo {text}"]
        if how == "exec":
            child = os.fork()
            if child == 0:
                os.dup2(fd, 1)
                connection.close()
                listener.close()
                os.execv(command[0], command)
            os.waitpid(child, 0)
        elif how == "subprocess":
            subprocess.run(command, stdout=connection, check=False)
        elif how == "system":
            os.set_inheritable(fd, True)
            print(f"inheritable {os.get_inheritable(fd)}", flush=True)
            os.system(f"echo {text} >&{fd}")
        elif how == "posix-spawn":
            child = os.posix_spawn(command[0], command, os.environ,
                                   file_actions=[(os.POSIX_SPAWN_DUP2, fd, 1)])
            os.waitpid(child, 0)
        elif how == "static-subprocess":
            subprocess.run(["/bin/busybox", "sh", "-c", f"if echo {text}; then echo written >&2; "
                            f"else echo failed >&2; fi"], stdin=connection, stdout=connection,
                           check=False)
        elif how == "static-spawn":
            child = os.posix_spawn("/bin/busybox", ["busybox", "sh", "-c",
                                                    f"if echo {text}; then echo written >&2; "
                                                    f"else echo failed >&2; fi"], os.environ,
                                   file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0),
                                                 (os.POSIX_SPAWN_DUP2, fd, 1)])
            os.waitpid(child, 0)
        elif how in ("static-exec", "nobody-exec"):
            child = os.fork()
            if child == 0:
                os.dup2(fd, 0)
                os.dup2(fd, 1)
                connection.close()
                listener.close()
                shell = ["/bin/busybox", "sh"]
                if how == "nobody-exec":
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    shell = ["/bin/sh"]
                # The report goes to stderr, which the handler keeps.
                os.execv(shell[0], shell + ["-c", f"if echo {text}; then echo written >&2; "
                                                  f"else echo failed >&2; fi"])
            os.waitpid(child, 0)
        print(f"handed over ({label})", flush=True)
        connection.close()


def libc_messages():
    """libc through ctypes, with struct iovec, msghdr and mmsghdr (x86-64/arm64 layouts): Python's
    socket module has no sendmmsg and builds its own control buffers."""
    libc = ctypes.CDLL(None, use_errno=True)

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]

    class MsgHdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                    ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
                    ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class MMsgHdr(ctypes.Structure):
        _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]
    return libc, IoVec, MsgHdr, MMsgHdr


def send_fds_raw(sock, fds, how):
    """Sends one byte with SCM_RIGHTS through libc directly (ctypes): "tight" packs two control
    messages, the second holding fds, with the last one unpadded (the layout some glibc versions'
    CMSG_NXTHDR stop before); "mmsg" uses sendmmsg. Raises OSError as socket.send_fds does."""
    libc, IoVec, MsgHdr, MMsgHdr = libc_messages()

    def cmsg(fd_list, pad):
        data = array.array("i", fd_list).tobytes()
        length = 16 + len(data)
        body = struct.pack("@Qii", length, socket.SOL_SOCKET, socket.SCM_RIGHTS) + data
        return body + b"\0" * ((-length) % 8 if pad else 0)
    harmless = os.open("/dev/null", os.O_RDONLY)
    control = cmsg([harmless], True) + cmsg(fds, how != "tight")
    buffer = ctypes.create_string_buffer(control, len(control))
    payload = ctypes.create_string_buffer(b"x", 1)
    iov = IoVec(ctypes.cast(payload, ctypes.c_void_p), 1)
    header = MsgHdr(None, 0, ctypes.pointer(iov), 1, ctypes.cast(buffer, ctypes.c_void_p),
                    len(control), 0)
    if how == "mmsg":
        vector = MMsgHdr(header, 0)
        result = libc.sendmmsg(sock.fileno(), ctypes.byref(vector), 1, 0)
    else:
        result = libc.sendmsg(sock.fileno(), ctypes.byref(header), 0)
    os.close(harmless)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def pass_server(port, when, text):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child = os.fork()
    if child == 0:
        ours.close()
        while True:
            _, fds, _, _ = socket.recv_fds(theirs, 16, 4)
            if not fds:
                os._exit(0)
            for fd in fds:
                try:
                    os.write(fd, text.encode() + b"\n")
                finally:
                    os.close(fd)
    theirs.close()
    listener = listen(port)
    while True:
        connection, _ = listener.accept()
        if when != "fresh":
            connection.makefile("rb").readline()
        try:
            if when in ("tight", "mmsg"):
                send_fds_raw(ours, [connection.fileno()], when)
            else:
                socket.send_fds(ours, [b"x"], [connection.fileno()])
            print("passed", flush=True)
        except OSError as error:
            print(f"refused {errno.errorcode.get(error.errno, error.errno)}", flush=True)
        connection.close()


def mmsg_client(port, line):
    """Sends line + newline as two messages of one sendmmsg call (ctypes: Python has no
    sendmmsg), prints the count sent, then the reply line."""
    libc, IoVec, MsgHdr, MMsgHdr = libc_messages()

    parts = [ctypes.create_string_buffer(line.encode(), len(line)),
             ctypes.create_string_buffer(b"\n", 1)]
    iovs = [IoVec(ctypes.cast(p, ctypes.c_void_p), len(p.raw)) for p in parts]
    vector = (MMsgHdr * 2)(*[MMsgHdr(MsgHdr(None, 0, ctypes.pointer(iov), 1, None, 0, 0), 0)
                             for iov in iovs])
    with socket.create_connection(("127.0.0.1", port)) as connection:
        sent = libc.sendmmsg(connection.fileno(), vector, 2, 0)
        if sent < 0:
            raise OSError(ctypes.get_errno(), "sendmmsg")
        print(f"sent {sent} {vector[0].len} {vector[1].len}")
        print(connection.makefile("rb").readline().decode().strip())


def line_client(port, lines):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        reader = connection.makefile("rb")
        for line in lines:
            connection.sendall(line.encode() + b"\n")
            print(reader.readline().decode().strip())


def read_client(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        digest = hashlib.sha256()
        total = 0
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
    print(digest.hexdigest(), total)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "fork-server":
        fork_server(port)
    elif mode == "dup-server":
        dup_server(port)
    elif mode == "sendfile-server":
        sendfile_server(port, sys.argv[3])
    elif mode == "fionread-server":
        fionread_server(port)
    elif mode == "inetd-server":
        inetd_server(port)
    elif mode == "handler-server":
        handler_server(port, sys.argv[3], sys.argv[4])
    elif mode == "pass-server":
        pass_server(port, sys.argv[3], sys.argv[4])
    elif mode == "mmsg-client":
        mmsg_client(port, sys.argv[3])
    elif mode == "line-client":
        line_client(port, sys.argv[3:])
    elif mode == "read-client":
        read_client(port)


main()
