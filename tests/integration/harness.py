"""Shared machinery for libmeshtls integration tests.

Starts a real meshtls-agent in a private directory, runs real, unmodified programs under
`meshtls run`, and records the bytes between them with a relay so tests can assert what is on the
wire. Everything listens on loopback only, and every wait is bounded.
"""

import atexit
import ctypes
import errno
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.environ.get("MESHTLS_BUILD_DIR", "")
MESHTLS = os.path.join(BUILD, "meshtls")
AGENT = os.path.join(BUILD, "meshtls-agent")
ASAN_RUNTIME = os.environ.get("MESHTLS_TEST_ASAN_RUNTIME", "")
PYTHON = "/usr/bin/python3"
# -Dwolfssl=system links Debian's libwolfssl, which has no session export (wolfSSL_tls_export):
# a started session cannot follow its connection into a new program (it is reset at the exec,
# logged with NO_EXPORT_REASON) nor from one forked process to the next (it fails closed in the
# next one). Tests of the hand-over check that instead.
SYSTEM_WOLFSSL = os.environ.get("MESHTLS_TEST_WOLFSSL", "bundled") == "system"
SESSION_EXPORT = not SYSTEM_WOLFSSL
NO_EXPORT_REASON = "its TLS session cannot follow (this build's wolfSSL cannot export sessions)"


_for_other_users_dir = None


def for_other_users(*paths):
    """Copies of paths (files), readable and executable by every uid, for what a test runs as
    another user (uid 65534, or a program that drops to it before exec): the checkout itself may
    be private (a clone in a directory of mode 0700). All copies share one directory, so a copied
    meshtls CLI finds a copied libmeshtls-preload.so next to itself, as `meshtls run` looks for
    it; the directory goes when the test process exits. Returns the copy's path for one path, a
    list for several."""
    global _for_other_users_dir
    if _for_other_users_dir is None:
        _for_other_users_dir = tempfile.mkdtemp(prefix="meshtls-shared-")
        os.chmod(_for_other_users_dir, 0o755)
        atexit.register(shutil.rmtree, _for_other_users_dir, True)
    copies = []
    for path in paths:
        copy = os.path.join(_for_other_users_dir, os.path.basename(path))
        if not os.path.exists(copy):
            shutil.copy2(path, copy)
            os.chmod(copy, os.stat(copy).st_mode | 0o555)
        copies.append(copy)
    return copies[0] if len(copies) == 1 else copies


class TestFailure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise TestFailure(message)


_ports_given = set()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port free now. Never one this process was given before: the kernel may hand a released
    port out again at once, and a test that asks for several before binding them would get the
    same port twice (EADDRINUSE at its second bind)."""
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise OSError("no free port that this test has not been given already")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TestFailure(f"timed out after {timeout}s waiting for {what}")


def wait_agent_ready(process, sock, what="agent"):
    """Waits until an agent logs that it serves sock: the socket file alone appears before the
    issuer and the metrics directory are ready."""
    wait_for(lambda: f"serving {sock}:" in process.stderr() or process.popen.poll() is not None,
             20, f"{what} to serve {sock}")
    check(process.popen.poll() is None, f"{what} exited early:\n{process.stderr()}")


def port_open(port, host="127.0.0.1", family=socket.AF_INET):
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            s.connect((host, port))
            return True
    except OSError:
        return False


def base_env():
    env = dict(os.environ)
    for name in ("LD_PRELOAD", "MESHTLS_CONFIG", "MESHTLS_AGENT_SOCKET", "MESHTLS_LOG",
                 "MESHTLS_PROBE_SOURCES", "MESHTLS_PROBE_PORTS"):
        env.pop(name, None)
    if ASAN_RUNTIME:
        # Programs that are not ours may leak at exit; our own leaks are checked by the unit suite.
        env["LD_PRELOAD"] = ASAN_RUNTIME
        env["ASAN_OPTIONS"] = "detect_leaks=0:verify_asan_link_order=0:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


class Process:
    """A child process whose stderr (and stdout) are captured to files for assertions."""

    def __init__(self, name, argv, workdir, env=None, stdin=subprocess.DEVNULL):
        self.name = name
        self.stdout_path = os.path.join(workdir, f"{name}.out")
        self.stderr_path = os.path.join(workdir, f"{name}.err")
        self.stdout_file = open(self.stdout_path, "wb")
        self.stderr_file = open(self.stderr_path, "wb")
        # Its own process group: stop() ends whatever it started too (a tracer's tracee, a
        # server's forked children), which would otherwise outlive the test.
        self.popen = subprocess.Popen(argv, stdout=self.stdout_file, stderr=self.stderr_file,
                                      stdin=stdin, env=env or base_env(), cwd=workdir,
                                      process_group=0)

    def stderr(self):
        if not self.stderr_file.closed:
            self.stderr_file.flush()
        with open(self.stderr_path, "r", errors="replace") as f:
            return f.read()

    def stdout(self):
        if not self.stdout_file.closed:
            self.stdout_file.flush()
        with open(self.stdout_path, "rb") as f:
            return f.read()

    def wait(self, timeout):
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            raise TestFailure(f"{self.name} did not finish within {timeout}s\n"
                              f"stderr:\n{self.stderr()}")

    def signal_group(self, number):
        try:
            os.killpg(self.popen.pid, number)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.signal_group(signal.SIGKILL)
        self.stdout_file.close()
        self.stderr_file.close()


class Mesh:
    """A temporary directory with an agent and a workload config pointing at it."""

    def __init__(self, name="mesh", loopback_mode=("mtls", "strict"), log_level="info"):
        self.dir = tempfile.mkdtemp(prefix=f"meshtls-{name}-")
        self.processes = []
        self.agents = {}
        self.configs = {}
        self.loopback_mode = loopback_mode
        self.log_level = log_level

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        for process in reversed(self.processes):
            process.stop()
        failed = kind is not None
        if failed:
            sys.stderr.write(f"FAIL: {value}\n")
            self.dump()
        if not failed or os.environ.get("MESHTLS_TEST_KEEP") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    def dump(self):
        for process in self.processes:
            sys.stderr.write(f"--- {process.name} stderr ---\n{process.stderr()[-4000:]}\n")

    def start_agent(self, name="agent", trust_domain=None, config=None):
        """Starts an agent; config is the text of its configuration file (rules etc.)."""
        state = os.path.join(self.dir, f"{name}-state")
        sock = os.path.join(self.dir, f"{name}.sock")
        # Test agents serve no metrics endpoint: they would all want the default port.
        argv = [AGENT, "--socket", sock, "--state-dir", state, "--metrics-address", "off"]
        if trust_domain:
            argv += ["--trust-domain", trust_domain]
        if config is not None:
            path = os.path.join(self.dir, f"{name}-agent.conf")
            with open(path, "w") as f:
                f.write(config)
            argv += ["--config", path]
        env = base_env()
        if ASAN_RUNTIME:
            env.pop("LD_PRELOAD", None)  # the agent links the sanitizer runtime itself
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        process = self.spawn(name, argv, env=env)
        wait_agent_ready(process, sock, name)
        self.agents[name] = sock
        self.write_config(name, sock)
        return sock

    def write_config(self, name, sock, extra=""):
        outbound, inbound = self.loopback_mode
        path = os.path.join(self.dir, f"{name}.conf")
        with open(path, "w") as f:
            f.write(f'agent_socket = "{sock}";\n'
                    f'outbound = {{ loopback = "{outbound}"; }};\n'
                    f'inbound = {{ loopback = "{inbound}"; }};\n'
                    f'log_level = "{self.log_level}";\n' + extra)
        self.configs[name] = path
        return path

    def spawn(self, name, argv, env=None, stdin=subprocess.DEVNULL):
        process = Process(name, argv, self.dir, env=env, stdin=stdin)
        self.processes.append(process)
        return process

    def meshed(self, name, argv, agent="agent", config=None, env=None, stdin=subprocess.DEVNULL,
               meshtls=MESHTLS):
        """Runs argv under `meshtls run` (the CLI meshtls) with the config of agent (or
        config)."""
        config = config or self.configs[agent]
        return self.spawn(name, [meshtls, "run", "--config", config, "--"] + argv, env=env,
                          stdin=stdin)

    def http_server(self, name, port, directory, agent="agent"):
        server = self.meshed(name, [PYTHON, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                                    "--directory", directory], agent=agent)
        wait_for(lambda: "Serving HTTP" in server.stdout().decode(errors="replace")
                 or port_open(port) or server.popen.poll() is not None, 20, f"{name} to listen")
        check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
        return server


class Relay:
    """A loopback TCP relay that records both directions of every connection it carries."""

    def __init__(self, target_port, target_host="127.0.0.1", family=socket.AF_INET,
                 host="127.0.0.1", propagate_reset=False):
        """propagate_reset: a side that resets the connection makes the relay reset the other
        side too (else the other side sees the end of the stream)."""
        self.target = (target_host, target_port)
        self.propagate_reset = propagate_reset
        self.family = family
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.client_bytes = []  # per connection: client → server
        self.server_bytes = []  # per connection: server → client
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        self.listener.settimeout(0.2)
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            upstream = socket.socket(self.family, socket.SOCK_STREAM)
            upstream.connect(self.target)
            with self.lock:
                index = len(self.client_bytes)
                self.client_bytes.append(bytearray())
                self.server_bytes.append(bytearray())
            threading.Thread(target=self.pump, args=(client, upstream, self.client_bytes[index]),
                             daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, self.server_bytes[index]),
                             daemon=True).start()

    def pump(self, source, destination, record):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    destination.shutdown(socket.SHUT_WR)
                    return
                with self.lock:
                    record.extend(data)
                destination.sendall(data)
        except OSError as error:
            if self.propagate_reset and error.errno == errno.ECONNRESET:
                # connect(AF_UNSPEC) disconnects a TCP socket with RST, and (unlike a close with a
                # zero linger time) also while the other direction's thread is in recv on it.
                unspecified = struct.pack("H14x", socket.AF_UNSPEC)
                ctypes.CDLL(None).connect(destination.fileno(), unspecified, len(unspecified))
            # shutdown first: close() alone neither wakes the other direction's thread blocked in
            # recv on the same socket nor ends the connection while that recv holds it.
            for s in (source, destination):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        self.listener.close()


def tls_records(data):
    """Splits a byte stream into (content_type, legacy_version, body) TLS records; raises if the
    stream is not a sequence of well-formed records."""
    records = []
    offset = 0
    while offset < len(data):
        check(len(data) - offset >= 5, f"truncated TLS record header at byte {offset}")
        content_type, version, length = struct.unpack("!BHH", data[offset:offset + 5])
        check(content_type in (20, 21, 22, 23),
              f"byte {offset}: content type {content_type} is not TLS")
        check(version in (0x0301, 0x0303), f"byte {offset}: record version {version:#x}")
        check(length <= 16384 + 256, f"byte {offset}: record length {length} too long")
        check(offset + 5 + length <= len(data), f"byte {offset}: record runs past the stream")
        records.append((content_type, version, data[offset + 5:offset + 5 + length]))
        offset += 5 + length
    return records


def hello_extensions(hello):
    """[(type, body)] of the extensions of a ClientHello (1) or ServerHello (2) handshake
    message, in order (RFC 8446 §4.1.2, §4.1.3)."""
    kind = hello[0]
    offset = 4 + 2 + 32  # handshake header, legacy_version, random
    offset += 1 + hello[offset]  # legacy_session_id
    if kind == 1:
        offset += 2 + struct.unpack("!H", hello[offset:offset + 2])[0]  # cipher_suites
        offset += 1 + hello[offset]  # legacy_compression_methods
    else:
        offset += 2 + 1  # cipher_suite, legacy_compression_method
    end = offset + 2 + struct.unpack("!H", hello[offset:offset + 2])[0]
    offset += 2
    found = []
    while offset + 4 <= end:
        kind, length = struct.unpack("!HH", hello[offset:offset + 4])
        found.append((kind, hello[offset + 4:offset + 4 + length]))
        offset += 4 + length
    return found


def negotiated_tls13(server_records):
    """True when the first server record is a ServerHello selecting TLS 1.3 (RFC 8446 §4.2.1)."""
    content_type, _, body = server_records[0]
    check(content_type == 22 and body[0] == 2, "first server record is not a ServerHello")
    offset = 4 + 2 + 32  # handshake header, legacy_version, random
    session_id_length = body[offset]
    offset += 1 + session_id_length + 2 + 1  # session id, cipher suite, compression
    extensions_end = offset + 2 + struct.unpack("!H", body[offset:offset + 2])[0]
    offset += 2
    while offset + 4 <= extensions_end:
        kind, length = struct.unpack("!HH", body[offset:offset + 4])
        if kind == 43:  # supported_versions
            return body[offset + 4:offset + 4 + length] == b"\x03\x04"
        offset += 4 + length
    return False


def assert_tls13_wire(client_to_server, server_to_client, secrets):
    """Both directions are TLS records, the handshake is TLS 1.3, application data is encrypted,
    and none of the secrets appear in either direction."""
    client_records = tls_records(bytes(client_to_server))
    server_records = tls_records(bytes(server_to_client))
    check(client_records and client_records[0][0] == 22 and client_records[0][2][0] == 1,
          "first client record is not a ClientHello")
    check(negotiated_tls13(server_records), "ServerHello did not select TLS 1.3")
    # After the hellos, TLS 1.3 sends everything as application_data (23) records, except the
    # optional middlebox-compatibility change_cipher_spec (20).
    for content_type, _, _ in client_records[1:] + server_records[1:]:
        check(content_type in (20, 23), f"unexpected cleartext record type {content_type}")
    check(any(t == 23 for t, _, _ in client_records[1:]), "client sent no encrypted records")
    for secret in secrets:
        check(secret not in bytes(client_to_server) and secret not in bytes(server_to_client),
              f"plaintext {secret[:20]!r} visible on the wire")
    return len(client_records), len(server_records)


def http_client(url):
    """argv fetching url to stdout: curl, or fetch.py where curl cannot run (see fetch.py)."""
    if ASAN_RUNTIME:
        return [PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fetch.py"), url]
    return ["curl", "--silent", "--show-error", "--max-time", "20", url]


def random_token(n=24):
    return "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(n))


def main(test):
    """Runs test() and turns a TestFailure into a message and exit status 1."""
    try:
        test()
    except TestFailure as failure:
        sys.stderr.write(f"FAIL: {failure}\n")
        sys.exit(1)
    print("PASS")


# --- Helpers for the real-program suite and the soak test ---------------------------------------

SKIP_EXIT_CODE = 77  # meson's "skipped"


def skip(reason):
    """Ends the test as skipped (meson exit code 77), printing why."""
    print(f"SKIP: {reason}")
    sys.stdout.flush()
    sys.exit(SKIP_EXIT_CODE)


def skip_without_session_export(reason):
    """Skips only in the -Dwolfssl=system build, for a test that needs a session to cross from
    process to process (SESSION_EXPORT); the test that checks that build's reset says where."""
    if not SESSION_EXPORT:
        skip(f"-Dwolfssl=system: {reason}")


def skip_if_sanitized(reason):
    """Skips only in the ASan+UBSan build, for a program that the preloaded sanitizer runtime
    breaks by itself (with or without libmeshtls); never skips in the plain build."""
    if ASAN_RUNTIME:
        skip(f"sanitized build: {reason}")


def port_listening(port, family=socket.AF_INET):
    """True when some socket listens on port, read from /proc/net/tcp{,6}: unlike port_open()
    it does not connect, so a strict server logs no refused plaintext probe."""
    path = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    with open(path) as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def start_meshed_server(mesh, name, argv, port, timeout=20, env=None, family=socket.AF_INET):
    """Runs a server under `meshtls run` and waits until it listens on port (or fails if it
    exits first)."""
    server = mesh.meshed(name, argv, env=env)
    wait_for(lambda: port_listening(port, family) or server.popen.poll() is not None, timeout,
             f"{name} to listen on {port}")
    check(server.popen.poll() is None,
          f"{name} exited with {server.popen.returncode}:\n{server.stderr()[-4000:]}")
    return server


def run_meshed(mesh, name, argv, timeout, env=None):
    """Runs a client under `meshtls run` to completion; returns (status, stdout text, stderr)."""
    client = mesh.meshed(name, argv, env=env)
    status = client.wait(timeout)
    return status, client.stdout().decode(errors="replace"), client.stderr()



def nginx_conf(directory, listen, master=False, connections=256, error_level="warn",
               http_extra="", types="text/html html"):
    """An nginx configuration serving DIRECTORY/www on LISTEN, everything it writes in DIRECTORY
    (runs as root where the tests do: nginx would otherwise switch to a user that cannot read it)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}daemon off;
master_process {"on" if master else "off"};
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/nginx-error.log {error_level};
events {{ worker_connections {connections}; use epoll; }}
http {{
{http_extra}    client_body_temp_path {directory}/client_body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    types {{ {types}; }}
    server {{ listen {listen}; root {directory}/www; }}
}}
"""

def sha256_bytes(data):
    import hashlib
    return hashlib.sha256(data).hexdigest()


def write_random_file(path, size, marker=b""):
    """Writes size random bytes, with marker (a plaintext secret) repeated every 64 KiB so a
    wire check can look for it; returns the sha256 of the content."""
    data = bytearray(os.urandom(size))
    if marker:
        for offset in range(0, size - len(marker), 65536):
            data[offset:offset + len(marker)] = marker
    with open(path, "wb") as f:
        f.write(data)
    return sha256_bytes(bytes(data))


def process_fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def process_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure(f"no VmRSS for pid {pid}")


def assert_relay_tls13(relay, secrets, expected_connections=None):
    """Every connection the relay carried is TLS 1.3 with none of the secrets visible; returns
    the number of connections checked."""
    relay.stop()
    with relay.lock:
        pairs = list(zip(relay.client_bytes, relay.server_bytes))
    check(pairs, "the relay carried no connection")
    if expected_connections is not None:
        check(len(pairs) == expected_connections,
              f"relay carried {len(pairs)} connections, expected {expected_connections}")
    for up, down in pairs:
        assert_tls13_wire(bytes(up), bytes(down), secrets)
    return len(pairs)


def assert_plaintext_refused(port, server, request,
                             log_line="refused inbound connection from 127.0.0.1"):
    """A plaintext client sends request to a strict meshed server's port: it gets nothing back
    (end of stream or a reset), and the server's log says it refused the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(request)
        try:
            answer = plain.recv(4096)
        except ConnectionResetError:
            answer = b""
    check(answer == b"", f"a plaintext client got an answer: {answer!r}")
    wait_for(lambda: log_line in server.stderr(), 10, "the server to log the refused plaintext")


# --- For a client that a test runs as a separate (meshed) process -------------------------------

def fail_client(message):
    """Ends a client process with its complaint on stderr and exit status 1."""
    sys.stderr.write(f"client: {message}\n")
    sys.exit(1)


class LineClient:
    """A line-by-line conversation on a plain socket; any failure ends the client process."""

    def __init__(self, port, name):
        self.name = name
        try:
            self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError as error:
            fail_client(f"{name}: connect: {error}")
        self.buffer = b""

    def ask(self, line):
        try:
            self.socket.sendall(line.encode() + b"\n")
            while b"\n" not in self.buffer:
                chunk = self.socket.recv(4096)
                if not chunk:
                    fail_client(f"{self.name}: server closed the connection after {line!r}")
                self.buffer += chunk
        except OSError as error:
            fail_client(f"{self.name}: {line!r}: {type(error).__name__}: {error}")
        answer, self.buffer = self.buffer.split(b"\n", 1)
        return answer.decode()

    def echo(self, line):
        answer = self.ask(line)
        if answer != line:
            fail_client(f"{self.name}: sent {line!r}, got {answer!r}")


class dumped_on_failure:
    """A context manager that prints the tails of log files a program wrote itself (nginx's
    error log, say) to stderr when the block fails."""

    def __init__(self, *paths):
        self.paths = paths

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is not None:
            for path in self.paths:
                try:
                    with open(path, errors="replace") as f:
                        text = f.read()[-6000:]
                except OSError as error:
                    text = f"({error})"
                sys.stderr.write(f"--- {os.path.basename(path)} ---\n{text}\n")
        return False


def complete_records_prefix(data):
    """The longest prefix of data made of whole TLS records (by their length fields)."""
    offset = 0
    while offset + 5 <= len(data):
        length = struct.unpack("!H", data[offset + 3:offset + 5])[0]
        if offset + 5 + length > len(data):
            break
        offset += 5 + length
    return data[:offset]


def assert_tls13_wire_torn_down(client_to_server, server_to_client, secrets):
    """assert_tls13_wire for a connection a program ends with a reset while data is in flight
    (iperf3's data stream): the relay loses what was still in its socket buffers, so each
    direction may end inside a record. Every whole record is checked; the cut-off tail is not.
    Returns the number of bytes checked in each direction."""
    up = complete_records_prefix(bytes(client_to_server))
    down = complete_records_prefix(bytes(server_to_client))
    check(len(client_to_server) - len(up) <= 16384 + 256 and
          len(server_to_client) - len(down) <= 16384 + 256,
          "more than one record's worth of bytes after the last whole record")
    assert_tls13_wire(up, down, secrets)
    for secret in secrets:
        check(secret not in bytes(client_to_server) and secret not in bytes(server_to_client),
              f"plaintext {secret[:20]!r} visible on the wire")
    return len(up), len(down)
