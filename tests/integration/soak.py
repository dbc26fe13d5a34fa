"""Soak: nothing is lost under load, and nothing leaks.

At least 200 concurrent clients, in several client processes, talk to one epoll echo server over
mTLS, every process under `meshtls run`. Each client opens connection after connection and sends
random-sized messages (1 B .. 1 MiB, most of them small) in random-sized writes, reading the echo
in random-sized reads; half the clients use blocking sockets (with SO_RCVTIMEO/SO_SNDTIMEO so no
wait is unbounded), half non-blocking sockets driven by poll, select or epoll. A connection ends
either with a half-close, after which the server sends a trailer with the connection's byte
count and sha256 and closes, or with a "quit" frame and a full close. The server is non-blocking
on select.epoll (the object behind selectors.EpollSelector) and treats a third of its
connections level-triggered, a third edge-triggered (read and write until EAGAIN) and a third
one-shot (re-armed after every event); level-triggered and one-shot connections read only one
random-sized piece per event, so decrypted bytes are regularly left buffered for the next wait.

What it proves: every message comes back byte for byte and in order with the server's sha256 of
what it received; every half-closed connection's trailer matches everything sent on it; the
server counts exactly the messages and bytes the clients counted; all clients really were
connected at once; and after a warm-up round the server's open fds are the same and its RSS grows
by less than 20 % over the following rounds. Bounded by message count and by time: it stops by
itself in about a minute.

Modes: `soak.py server PORT STATS_FILE [faults]`, `soak.py clients ...` (see client_main) and,
with no arguments, the test itself. The `faults` variants serve test_soak_faults.py, which runs
the same server and clients under libmeshtls-preload-faults.so: there a connection may fail, but
only with an errno, and each client reports how each of its connections ended.
"""

import errno
import hashlib
import json
import os
import random
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time

HEADER = struct.Struct("!cI")  # kind (b"M" message, b"Q" quit), payload length
TRAILER = struct.Struct("!cQQ")  # b"T", bytes received on the connection, messages
DIGEST_SIZE = 32
MAX_MESSAGE = 1024 * 1024
POOL_SIZE = 4 * 1024 * 1024

# The test's shape: enough to stay under about a minute on two cores, also under ASan.
CLIENTS = 200
PROCESSES = 4
WARMUP_SECONDS = 6
ROUND_SECONDS = 10
ROUNDS = 2  # after the warm-up
MAX_MESSAGES_PER_CLIENT = 400  # per round
RSS_GROWTH_LIMIT = 0.20
FAULTS_TIMEOUT = 10.0  # any single wait under fault injection: longer counts as a hang


# --- the server ------------------------------------------------------------------------------

class Connection:
    """One accepted connection: parses frames, echoes payloads, hashes them."""

    LEVEL, EDGE, ONESHOT = "level", "edge", "oneshot"

    def __init__(self, sock, trigger):
        self.sock = sock
        self.trigger = trigger
        self.header = b""
        self.remaining = None  # payload bytes still expected; None between messages
        self.message_hash = None
        self.total_hash = hashlib.sha256()
        self.total_bytes = 0
        self.messages = 0
        self.out = bytearray()
        self.eof = False
        self.quiet = False  # the client sent "quit": no trailer
        self.mask = None

    def take(self, data):
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            if self.remaining is None:
                piece = bytes(view[offset:offset + HEADER.size - len(self.header)])
                self.header += piece
                offset += len(piece)
                if len(self.header) < HEADER.size:
                    continue
                kind, length = HEADER.unpack(self.header)
                self.header = b""
                if kind == b"Q":
                    self.quiet = True
                elif kind == b"M" and 0 < length <= MAX_MESSAGE:
                    self.remaining = length
                    self.message_hash = hashlib.sha256()
                else:
                    raise ValueError(f"bad frame header {kind!r} {length}")
            else:
                piece = view[offset:offset + self.remaining]
                offset += len(piece)
                self.remaining -= len(piece)
                self.message_hash.update(piece)
                self.total_hash.update(piece)
                self.total_bytes += len(piece)
                self.out += piece
                if self.remaining == 0:
                    self.out += self.message_hash.digest()
                    self.messages += 1
                    self.remaining = None

    def end_of_input(self):
        if self.remaining is not None or self.header:
            raise ValueError(f"end of stream inside a frame ({self.remaining} payload bytes "
                             f"missing, {len(self.header)} header bytes)")
        self.eof = True
        if not self.quiet:
            self.out += TRAILER.pack(b"T", self.total_bytes, self.messages)
            self.out += self.total_hash.digest()


class Server:
    def __init__(self, port, stats_path, faults=False):
        self.stats_path = stats_path
        if faults:
            # Exit through the interpreter's normal path, so the fault build writes its counts.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(1024)
        self.listener.setblocking(False)
        self.epoll = select.epoll()
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        self.connections = {}
        self.rng = random.Random(port)
        self.stats = {"accepted": 0, "closed": 0, "open": 0, "max_open": 0, "messages": 0,
                      "bytes": 0, "errors": 0, "by_trigger": {}, "error_kinds": {}}
        self.stats_written = None

    def run(self):
        print("listening", flush=True)
        while True:
            for fd, events in self.epoll.poll(0.2):
                if fd == self.listener.fileno():
                    self.accept()
                elif fd in self.connections:
                    self.service(self.connections[fd], events)
            self.write_stats()

    def accept(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            trigger = (Connection.LEVEL, Connection.EDGE,
                       Connection.ONESHOT)[self.stats["accepted"] % 3]
            connection = Connection(sock, trigger)
            self.connections[sock.fileno()] = connection
            self.stats["accepted"] += 1
            self.stats["open"] += 1
            self.stats["max_open"] = max(self.stats["max_open"], self.stats["open"])
            by_trigger = self.stats["by_trigger"]
            by_trigger[trigger] = by_trigger.get(trigger, 0) + 1
            self.arm(connection)

    def arm(self, connection):
        if connection.trigger == Connection.EDGE:
            mask = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        else:
            mask = (0 if connection.eof else select.EPOLLIN) | \
                   (select.EPOLLOUT if connection.out else 0)
            if connection.trigger == Connection.ONESHOT:
                mask |= select.EPOLLONESHOT
        if connection.mask is None:
            self.epoll.register(connection.sock.fileno(), mask)
        elif mask != connection.mask or connection.trigger == Connection.ONESHOT:
            self.epoll.modify(connection.sock.fileno(), mask)
        connection.mask = mask

    def service(self, connection, events):
        edge = connection.trigger == Connection.EDGE
        try:
            if not connection.eof and events & (select.EPOLLIN | select.EPOLLHUP |
                                                select.EPOLLERR | select.EPOLLRDHUP):
                self.receive(connection, until_eagain=edge)
            if connection.out:
                # Edge-triggered: write until EAGAIN now, or no later edge comes.
                self.send(connection, until_eagain=edge)
        except (OSError, ValueError) as error:
            self.stats["errors"] += 1
            kind = error_kind(error)
            self.stats["error_kinds"][kind] = self.stats["error_kinds"].get(kind, 0) + 1
            sys.stderr.write(f"soak server: {connection.trigger} connection after "
                             f"{connection.messages} messages, {connection.total_bytes} "
                             f"bytes: {type(error).__name__}: {error}\n")
            self.close(connection)
            return
        if connection.eof and not connection.out:
            self.close(connection)
        elif not edge:
            self.arm(connection)

    def receive(self, connection, until_eagain):
        while True:
            try:
                data = connection.sock.recv(self.rng.randint(1, 65536))
            except BlockingIOError:
                return
            if not data:
                connection.end_of_input()
                self.stats["messages"] += connection.messages
                self.stats["bytes"] += connection.total_bytes
                return
            connection.take(data)
            if not until_eagain:
                return

    def send(self, connection, until_eagain):
        while connection.out:
            try:
                n = connection.sock.send(connection.out[:self.rng.randint(1, 256 * 1024)])
            except BlockingIOError:
                return
            del connection.out[:n]
            if not until_eagain:
                return

    def close(self, connection):
        fd = connection.sock.fileno()
        self.epoll.unregister(fd)
        del self.connections[fd]
        connection.sock.close()
        self.stats["open"] -= 1
        self.stats["closed"] += 1

    def write_stats(self):
        text = json.dumps(self.stats, sort_keys=True)
        if text != self.stats_written:
            with open(self.stats_path + ".tmp", "w") as f:
                f.write(text)
            os.replace(self.stats_path + ".tmp", self.stats_path)
            self.stats_written = text


def error_kind(error):
    """How a connection failed: the errno's name, or what a ValueError / ClientFailure means."""
    if isinstance(error, ClientFailure):
        return error.kind
    if isinstance(error, ValueError):
        return "truncated" if str(error).startswith("end of stream") else "corrupted"
    if isinstance(error, OSError) and error.errno is not None:
        return errno.errorcode.get(error.errno, str(error.errno))
    return type(error).__name__


# --- the clients -----------------------------------------------------------------------------

class ClientFailure(Exception):
    """kind: "corrupted" (bytes differ), "hung" (a wait ran out), "truncated" (end of stream
    too early), or an errno name."""

    def __init__(self, message, kind="other"):
        super().__init__(message)
        self.kind = kind


class Client:
    """One client thread: connections one after another until its time or message budget ends."""

    SELECTORS = (selectors.PollSelector, selectors.SelectSelector, selectors.EpollSelector)
    TIMEOUT = 30.0  # any single wait; a stall fails the client instead of hanging it

    def __init__(self, index, ports, pool, gate, options):
        self.index = index
        self.ports = ports
        self.pool = pool
        self.gate = gate
        self.options = options
        self.rng = random.Random(options.seed * 100003 + index)
        self.blocking = index % 2 == 0
        self.selector_class = self.SELECTORS[(index // 2) % 3]
        self.counts = {"connections": 0, "messages": 0, "bytes": 0, "half_closes": 0}
        self.failure = None
        if options.faults:
            self.TIMEOUT = FAULTS_TIMEOUT
            self.outcomes = {"completed": 0, "bytes_sent": 0, "bytes_received": 0,
                             "bytes_lost": 0, "failed": {}}
            self.echoed_bytes = 0

    def run(self):
        if self.options.faults:
            self.run_with_faults()
            return
        try:
            sock = self.connect()
            self.exchange(sock, self.message())  # connected and handshaken before the gate
        except Exception as error:  # every failure is reported with the client's history
            self.failure = f"{type(error).__name__}: {error} ({self.describe()}, first message)"
            sys.stderr.write(f"client {self.index}: {self.failure}\n")
            sys.stderr.flush()
            self.gate.arrive()
            return
        self.gate.arrive()
        try:
            deadline = self.gate.wait_for_go() + self.options.duration
            messages_left = self.options.max_messages - 1
            while True:
                for _ in range(self.rng.randint(1, 8)):
                    if messages_left <= 0 or time.monotonic() > deadline:
                        break
                    self.exchange(sock, self.message())
                    messages_left -= 1
                self.finish(sock)
                if messages_left <= 0 or time.monotonic() > deadline:
                    return
                sock = self.connect()
        except Exception as error:
            self.failure = (f"{type(error).__name__}: {error} ({self.describe()}, after "
                            f"{self.counts})")

    def run_with_faults(self):
        """Connection after connection, as run() does, except that a connection may fail: each
        ends completed (every byte echoed, hash-checked and, after a half-close, confirmed by the
        server's trailer) or failed, and how is counted. The first attempt holds the gate."""
        deadline = None
        messages_left = self.options.max_messages
        while True:
            sock = None
            try:
                sock = self.connect()
                for _ in range(self.rng.randint(1, 8)):
                    if deadline is not None and (messages_left <= 0 or
                                                 time.monotonic() > deadline):
                        break
                    self.exchange(sock, self.message())
                    messages_left -= 1
                    if deadline is None:
                        deadline = self.pass_gate()
                self.finish(sock)
                self.outcomes["completed"] += 1
                self.outcomes["bytes_sent"] += self.sent_bytes
                self.outcomes["bytes_received"] += self.echoed_bytes
                self.outcomes["bytes_lost"] += self.sent_bytes - self.echoed_bytes
            except Exception as error:  # every ending is counted; the test judges them
                kind = error_kind(error)
                self.outcomes["failed"][kind] = self.outcomes["failed"].get(kind, 0) + 1
                sys.stderr.write(f"client {self.index}: {kind}: {error} ({self.describe()}, "
                                 f"connection {self.counts['connections']})\n")
                if sock is not None:
                    sock.close()
            if deadline is None:
                deadline = self.pass_gate()
            if messages_left <= 0 or time.monotonic() > deadline:
                return

    def pass_gate(self):
        self.gate.arrive()
        return self.gate.wait_for_go() + self.options.duration

    def describe(self):
        return ("blocking" if self.blocking else
                f"non-blocking/{self.selector_class.__name__}")

    def message(self):
        size = min(MAX_MESSAGE, int(2 ** self.rng.uniform(0, 20)))
        offset = self.rng.randint(0, len(self.pool) - size)
        return self.pool[offset:offset + size]

    def connect(self):
        port = self.ports[self.counts["connections"] % len(self.ports)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.blocking:
            timeout = struct.pack("ll", int(self.TIMEOUT), 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
            sock.connect(("127.0.0.1", port))
        else:
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            self.wait(sock, selectors.EVENT_WRITE, "connect")
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                raise ClientFailure(f"connect: {os.strerror(error)}",
                                    errno.errorcode.get(error, str(error)))
        self.counts["connections"] += 1
        self.sent_hash = hashlib.sha256()
        self.sent_bytes = 0
        self.sent_messages = 0
        if self.options.faults:
            self.echoed_bytes = 0
        return sock

    def wait(self, sock, events, what):
        with self.selector_class() as selector:
            selector.register(sock, events)
            if not selector.select(self.TIMEOUT):
                raise ClientFailure(f"no readiness for {what} within {self.TIMEOUT}s", "hung")

    def send_some(self, sock, frame, offset):
        """One send of a random-sized piece; returns the new offset."""
        piece = frame[offset:offset + self.rng.randint(1, 256 * 1024)]
        try:
            return offset + sock.send(piece)
        except BlockingIOError:
            if self.blocking:
                raise ClientFailure("send timed out (SO_SNDTIMEO)", "hung")
            return offset

    def receive_some(self, sock, limit):
        try:
            data = sock.recv(self.rng.randint(1, limit))
        except BlockingIOError:
            if self.blocking:
                raise ClientFailure("receive timed out (SO_RCVTIMEO)", "hung")
            return None
        return data

    def exchange(self, sock, payload):
        """Sends one message and reads back its echo and the server's digest of it."""
        frame = memoryview(HEADER.pack(b"M", len(payload)) + payload)
        expected = len(payload) + DIGEST_SIZE
        reply = bytearray()
        offset = 0
        if self.blocking:
            while offset < len(frame):
                offset = self.send_some(sock, frame, offset)
            while len(reply) < expected:
                data = self.receive_some(sock, min(65536, expected - len(reply)))
                if not data:
                    raise ClientFailure(f"end of stream after {len(reply)} of {expected} bytes",
                                        "truncated")
                reply += data
        else:
            with self.selector_class() as selector:
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                while len(reply) < expected:
                    ready = selector.select(self.TIMEOUT)
                    if not ready:
                        raise ClientFailure(f"stalled: sent {offset} of {len(frame)}, received "
                                            f"{len(reply)} of {expected}", "hung")
                    _, events = ready[0]
                    if events & selectors.EVENT_WRITE and offset < len(frame):
                        offset = self.send_some(sock, frame, offset)
                        if offset == len(frame):
                            selector.modify(sock, selectors.EVENT_READ)
                    if events & selectors.EVENT_READ:
                        data = self.receive_some(sock, min(65536, expected - len(reply)))
                        if data == b"":
                            raise ClientFailure(f"end of stream after {len(reply)} of "
                                                f"{expected} bytes", "truncated")
                        if data:
                            reply += data
        if reply[:len(payload)] != payload:
            where = next(i for i, (a, b) in enumerate(zip(reply, payload)) if a != b)
            raise ClientFailure(f"echo of a {len(payload)}-byte message differs at byte {where}",
                                "corrupted")
        if reply[len(payload):] != hashlib.sha256(payload).digest():
            raise ClientFailure(f"server's sha256 of a {len(payload)}-byte message differs",
                                "corrupted")
        self.sent_hash.update(payload)
        self.sent_bytes += len(payload)
        if self.options.faults:
            self.echoed_bytes += len(reply) - DIGEST_SIZE
        self.sent_messages += 1
        self.counts["messages"] += 1
        self.counts["bytes"] += len(payload)

    def finish(self, sock):
        """Half-close and check the trailer, or send quit and close outright."""
        with sock:
            if self.rng.random() < 0.4:
                frame = memoryview(HEADER.pack(b"Q", 0))
                offset = 0
                while offset < len(frame):
                    if not self.blocking:
                        self.wait(sock, selectors.EVENT_WRITE, "quit")
                    offset = self.send_some(sock, frame, offset)
                return
            sock.shutdown(socket.SHUT_WR)
            self.counts["half_closes"] += 1
            reply = bytearray()
            while True:
                if not self.blocking:
                    self.wait(sock, selectors.EVENT_READ, "trailer")
                data = self.receive_some(sock, 4096)
                if data == b"":
                    break
                if data:
                    reply += data
            expected = (TRAILER.pack(b"T", self.sent_bytes, self.sent_messages) +
                        self.sent_hash.digest())
            if bytes(reply) != expected:
                raise ClientFailure(f"trailer after half-close {bytes(reply)[:17]!r}... does not "
                                    f"match {self.sent_messages} messages, {self.sent_bytes} "
                                    f"bytes", "corrupted")


class Gate:
    """Holds every client after its first exchange until the test says go, so that all of them
    are connected at the same time; tells the test through a file when all have arrived."""

    def __init__(self, count, ready_path, go_path):
        self.count = count
        self.ready_path = ready_path
        self.go_path = go_path
        self.lock = threading.Lock()

    def arrive(self):
        with self.lock:
            self.count -= 1
            if self.count == 0:
                with open(self.ready_path, "w") as f:
                    f.write("ready\n")

    def wait_for_go(self):
        deadline = time.monotonic() + 120
        while not os.path.exists(self.go_path):
            if time.monotonic() > deadline:
                raise ClientFailure("the test never said go")
            time.sleep(0.02)
        return time.monotonic()


class Options:
    def __init__(self, argv):
        names = ("port", "relay_port", "threads", "duration", "max_messages", "seed", "marker",
                 "ready", "go", "faults")
        values = dict(zip(names, argv))
        self.port = int(values["port"])
        self.relay_port = int(values["relay_port"])
        self.threads = int(values["threads"])
        self.duration = float(values["duration"])
        self.max_messages = int(values["max_messages"])
        self.seed = int(values["seed"])
        self.marker = values["marker"].encode()
        self.ready = values["ready"]
        self.go = values["go"]
        self.faults = values.get("faults") == "faults"


def client_main(argv):
    """soak.py clients PORT RELAY_PORT THREADS SECONDS MAX_MESSAGES SEED MARKER READY GO [faults]:
    prints "ok" with totals, or the failures on stderr and exits 1. Client 0 alternates between
    the relay (if RELAY_PORT is not 0) and the server. With `faults`, failed connections do not
    fail the process: it prints "outcomes" and a JSON object of how its connections ended."""
    options = Options(argv)
    pool = bytearray(random.Random(options.seed).randbytes(POOL_SIZE))
    for offset in range(0, POOL_SIZE - len(options.marker), 4096):
        pool[offset:offset + len(options.marker)] = options.marker
    pool = bytes(pool)
    gate = Gate(options.threads, options.ready, options.go)
    clients = []
    for index in range(options.threads):
        ports = [options.port]
        if index == 0 and options.relay_port:
            ports = [options.relay_port, options.port]
        clients.append(Client(index, ports, pool, gate, options))
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120 + options.duration
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [c.index for c, t in zip(clients, threads) if t.is_alive()]
    if options.faults:
        outcomes = {"connections": sum(c.counts["connections"] for c in clients),
                    "hung_threads": len(hung), "failed": {}}
        for client in clients:
            for key, value in client.outcomes.items():
                if key == "failed":
                    for kind, n in value.items():
                        outcomes["failed"][kind] = outcomes["failed"].get(kind, 0) + n
                else:
                    outcomes[key] = outcomes.get(key, 0) + value
        print("outcomes " + json.dumps(outcomes, sort_keys=True), flush=True)
        return
    failures = [f"client {c.index}: {c.failure}" for c in clients if c.failure]
    totals = {key: sum(c.counts[key] for c in clients) for key in clients[0].counts}
    if hung or failures:
        sys.stderr.write("\n".join(failures[:20]) + "\n")
        sys.exit(f"{len(failures)} clients failed, {len(hung)} hung {hung[:20]}; totals {totals}")
    print("ok " + " ".join(f"{key}={value}" for key, value in totals.items()), flush=True)


# --- the test --------------------------------------------------------------------------------

def soak_test():
    from harness import (ASAN_RUNTIME, PYTHON, Mesh, Relay, assert_relay_tls13, base_env, check,
                         free_port, process_fd_count, process_rss_kb, random_token,
                         start_meshed_server, wait_for)

    me = os.path.abspath(__file__)
    started = time.monotonic()
    with Mesh("soak", log_level="warn") as mesh:
        mesh.start_agent()
        port = free_port()
        stats_path = os.path.join(mesh.dir, "server-stats.json")
        env = base_env()
        if ASAN_RUNTIME:
            # A small quarantine, so freed memory is reused and RSS measures what is held.
            env["ASAN_OPTIONS"] += ":quarantine_size_mb=16"
        server = start_meshed_server(mesh, "server", [PYTHON, me, "server", str(port),
                                                      stats_path], port, env=env)
        pid = server.popen.pid  # `meshtls run` execs the program: this is the server itself

        def stats():
            try:
                with open(stats_path) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return {}

        def alive():
            check(server.popen.poll() is None,
                  f"the server died ({server.popen.returncode}):\n{server.stderr()[-4000:]}")

        totals = {"messages": 0, "bytes": 0, "connections": 0, "half_closes": 0}
        measurements = []
        relay = Relay(port)
        marker = random_token()
        for round_number in range(ROUNDS + 1):
            warmup = round_number == 0
            duration = WARMUP_SECONDS if warmup else ROUND_SECONDS
            go = os.path.join(mesh.dir, f"go-{round_number}")
            ready = []
            processes = []
            for p in range(PROCESSES):
                ready.append(os.path.join(mesh.dir, f"ready-{round_number}-{p}"))
                relay_port = relay.port if warmup and p == 0 else 0
                argv = [PYTHON, me, "clients", str(port), str(relay_port),
                        str(CLIENTS // PROCESSES), str(duration), str(MAX_MESSAGES_PER_CLIENT),
                        str(round_number * 1000 + p), marker, ready[-1], go]
                processes.append(mesh.meshed(f"clients-{round_number}-{p}", argv, env=env))

            def arrived():
                alive()
                failed = [c for c in processes if c.popen.poll() is not None]
                check(not failed, f"client process exited before the gate:\n"
                                  f"{failed[0].stderr()[-4000:] if failed else ''}")
                return all(os.path.exists(path) for path in ready)

            wait_for(arrived, 120, f"{CLIENTS} clients to connect (round {round_number})")
            wait_for(lambda: stats().get("open", 0) >= CLIENTS, 10,
                     f"the server to count {CLIENTS} open connections")
            concurrent = stats()["open"]
            with open(go, "w") as f:
                f.write("go\n")
            for client in processes:
                status = client.wait(duration + 150)
                output = client.stdout().decode().strip()
                check(status == 0 and output.startswith("ok "),
                      f"{client.name} failed ({status}): {output}\n{client.stderr()[-6000:]}")
                for item in output.split()[1:]:
                    key, value = item.split("=")
                    totals[key] += int(value)
            wait_for(lambda: stats().get("open") == 0, 30,
                     f"the server to close every connection (round {round_number}): {stats()}")
            alive()
            if warmup:
                carried = assert_relay_tls13(relay, [marker.encode()])
            measurements.append((process_fd_count(pid), process_rss_kb(pid)))
            print(f"round {round_number}{' (warm-up)' if warmup else ''}: {concurrent} "
                  f"connections open at once; server fds {measurements[-1][0]}, "
                  f"RSS {measurements[-1][1]} KiB; after {time.monotonic() - started:.1f}s",
                  flush=True)

        final = stats()
        check(final["errors"] == 0, f"the server saw {final['errors']} connection errors:\n"
                                    f"{server.stderr()[-4000:]}")
        check(final["messages"] == totals["messages"] and final["bytes"] == totals["bytes"],
              f"the server counted {final['messages']} messages / {final['bytes']} bytes, the "
              f"clients {totals['messages']} / {totals['bytes']}")
        check(final["accepted"] == final["closed"] == totals["connections"],
              f"server accepted {final['accepted']}, closed {final['closed']}, clients "
              f"connected {totals['connections']}")
        (fds_warm, rss_warm), (fds_last, rss_last) = measurements[0], measurements[-1]
        check(fds_last == fds_warm,
              f"server fds: {fds_warm} after the warm-up, {fds_last} after the last round")
        growth = (rss_last - rss_warm) / rss_warm
        check(growth < RSS_GROWTH_LIMIT,
              f"server RSS grew {growth:.0%} after the warm-up ({rss_warm} → {rss_last} KiB; "
              f"each round: {[rss for _, rss in measurements]})")
        print(f"soak: {CLIENTS} concurrent clients, {totals['connections']} connections "
              f"({totals['half_closes']} half-closed), {totals['messages']} messages, "
              f"{totals['bytes'] / 2**20:.0f} MiB echoed and hash-checked; server triggers "
              f"{final['by_trigger']}; {carried} relayed connections TLS 1.3; fds "
              f"{fds_warm} → {fds_last}, RSS {rss_warm} → {rss_last} KiB ({growth:+.1%}); "
              f"{time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        Server(int(sys.argv[2]), sys.argv[3], faults=sys.argv[4:5] == ["faults"]).run()
    elif len(sys.argv) > 1 and sys.argv[1] == "clients":
        client_main(sys.argv[2:])
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from harness import main
        main(soak_test)
