#!/usr/bin/python3
"""meshtls-agent against real clients: CA lifecycle, SVID issuance, hostile input, start-up rules.

Starts the built agent in a scratch directory and talks to it over its Unix socket with the wire
format of libmeshtls/identity/proto.h. Certificates are checked with the openssl command line, not
with our own code, so that a bug in the issuing code cannot hide itself.

    agent_protocol.py --agent PATH/meshtls-agent --workdir TMPDIR

Exits 0 when every check passes; otherwise prints which check failed, with the agent's log.
"""

import argparse
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time

# identity/proto.h
VERSION = 1
SVID_REQUEST, SVID_RESPONSE, ERROR, ID_REQUEST, ID_RESPONSE = 1, 2, 3, 4, 5
TAG_CSR, TAG_SPIFFE_ID, TAG_CERT, TAG_BUNDLE, TAG_EXPIRY, TAG_ERROR_CODE, TAG_MESSAGE = range(1, 8)
ERR_MALFORMED, ERR_UNSUPPORTED, ERR_DENIED, ERR_BAD_CSR, ERR_INTERNAL = range(1, 6)
MAX_PAYLOAD = 64 * 1024

# A self-signed CA as an operator might make it, for the state directory.
OPENSSL_CA_CONFIG = """\
[ca]
default_ca = selfsigned
[selfsigned]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
x509_extensions = extensions
unique_subject = no
[anything]
organizationName = optional
[extensions]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectAltName = URI:spiffe://meshtls.local
subjectKeyIdentifier = hash
"""

REQUEST_TIMEOUT = 5.0  # MT_SERVER_REQUEST_TIMEOUT_MS
PROMPT = 1.0  # how quickly a well-formed request must be served while others misbehave
DAY = 24 * 3600


class CheckFailed(Exception):
    pass


def check(condition, what):
    if not condition:
        raise CheckFailed(what)


# --------------------------------------------------------------------------------------------
# Wire format


def frame(message_type, payload=b"", version=VERSION, magic=b"MT", declared=None):
    length = len(payload) if declared is None else declared
    return magic + bytes([version, message_type]) + struct.pack(">I", length) + payload


def tlv(tag, value):
    return struct.pack(">HI", tag, len(value)) + value


def parse_frame(data):
    check(len(data) >= 8, f"reply shorter than a header: {data!r}")
    check(data[:2] == b"MT" and data[2] == VERSION, f"reply header malformed: {data[:8]!r}")
    (length,) = struct.unpack(">I", data[4:8])
    check(len(data) == 8 + length, f"reply length {len(data)} does not match header {8 + length}")
    fields = {}
    payload = data[8:]
    while payload:
        tag, size = struct.unpack(">HI", payload[:6])
        fields.setdefault(tag, []).append(payload[6 : 6 + size])
        payload = payload[6 + size :]
    return data[3], fields


def read_until_close(sock, timeout):
    """All bytes until the agent closes; None if it has not closed within timeout seconds."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b"".join(chunks)


def connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def exchange(path, data, timeout=10.0):
    with connect(path) as sock:
        sock.sendall(data)
        reply = read_until_close(sock, timeout)
    check(reply is not None, "agent did not answer and close within %.0f s" % timeout)
    return parse_frame(reply)


def error_of(fields):
    (code,) = struct.unpack(">I", fields[TAG_ERROR_CODE][0])
    return code, fields[TAG_MESSAGE][0].decode(errors="replace")


# --------------------------------------------------------------------------------------------
# openssl


def openssl(*arguments, input_bytes=None, ok=True):
    result = subprocess.run(["openssl", *arguments], input=input_bytes, capture_output=True)
    if ok and result.returncode != 0:
        raise CheckFailed(
            "openssl %s failed: %s" % (" ".join(arguments), result.stderr.decode(errors="replace"))
        )
    return result


def make_csr(directory, claimed_id):
    """A P-256 CSR whose subject and SAN claim claimed_id (which the agent must ignore)."""
    key = os.path.join(directory, "workload.key")
    csr = os.path.join(directory, "workload.csr")
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    openssl(
        "req", "-new", "-key", key, "-subj", "/CN=" + claimed_id.replace("/", "\\/"),
        "-addext", "subjectAltName=URI:" + claimed_id, "-outform", "DER", "-out", csr,
    )
    with open(csr, "rb") as f:
        return key, f.read()


def der_to_pem(der, path):
    openssl("x509", "-inform", "DER", "-out", path, input_bytes=der)
    return path


# --------------------------------------------------------------------------------------------
# The agent process


class Agent:
    def __init__(self, binary, socket_path, state_dir, log_path, extra=()):
        self.socket_path = socket_path
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [binary, "--socket", socket_path, "--state-dir", state_dir, *extra],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
        )

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check(self.process.poll() is None,
                  "agent exited during start-up with status %s" % self.process.returncode)
            # The socket accepts connections before the CA is loaded; an answer means serving.
            try:
                message_type, _ = exchange(self.socket_path, frame(ID_REQUEST, b""))
                if message_type == ID_RESPONSE:
                    return self
            except (OSError, CheckFailed):
                pass
            time.sleep(0.05)
        raise CheckFailed("agent did not start serving %s within %.0f s" % (self.socket_path, timeout))

    def is_alive(self):
        return self.process.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise CheckFailed("agent did not exit within %.0f s of %s" % (timeout, sig.name))
        finally:
            self.log.close()
        return status


def run_agent_to_exit(binary, arguments, timeout=10.0):
    result = subprocess.run([binary, *arguments], capture_output=True, timeout=timeout)
    return result.returncode, result.stderr.decode(errors="replace")


# --------------------------------------------------------------------------------------------
# The checks


class Suite:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        self.state_dir = os.path.join(workdir, "state")
        # A missing parent directory: the agent must create it.
        self.socket_path = os.path.join(workdir, "run", "agent.sock")
        self.log_path = os.path.join(workdir, "agent.log")
        self.uid = os.getuid()
        self.agent = None

    def start(self, extra=(), state_dir=None):
        self.agent = Agent(self.binary, self.socket_path, state_dir or self.state_dir,
                           self.log_path, extra).wait_ready()
        return self.agent

    def request_svid(self, claimed_id="spiffe://meshtls.local/admin"):
        key, csr = make_csr(self.workdir, claimed_id)
        message_type, fields = exchange(self.socket_path, frame(SVID_REQUEST, tlv(TAG_CSR, csr)))
        if message_type == ERROR:
            raise CheckFailed("SVID request refused: code %d %s" % error_of(fields))
        check(message_type == SVID_RESPONSE, "expected SVID_RESPONSE, got type %d" % message_type)
        return key, fields

    def test_ca_created_then_reused(self):
        self.start()
        key_path = os.path.join(self.state_dir, "ca.key")
        cert_path = os.path.join(self.state_dir, "ca.crt")
        check(os.path.isfile(key_path) and os.path.isfile(cert_path), "ca.key/ca.crt not created")
        check(stat.S_IMODE(os.stat(key_path).st_mode) == 0o600,
              "ca.key mode is %o, not 600" % stat.S_IMODE(os.stat(key_path).st_mode))
        check(stat.S_IMODE(os.stat(self.state_dir).st_mode) == 0o700, "state dir is not 0700")
        check(stat.S_IMODE(os.stat(self.socket_path).st_mode) == 0o666, "socket is not 0666")
        text = openssl("x509", "-in", cert_path, "-noout", "-text").stdout.decode()
        check("CA:TRUE" in text, "ca.crt is not a CA:\n" + text)
        check("URI:spiffe://meshtls.local" in text, "ca.crt lacks URI:spiffe://meshtls.local")
        with open(cert_path, "rb") as f:
            first = f.read()
        check(self.agent.stop() == 0, "agent did not exit 0 on SIGTERM")
        self.start()
        with open(cert_path, "rb") as f:
            check(f.read() == first, "restart did not reuse the CA (ca.crt changed)")

    def test_svid_issued_for_uid_whatever_the_csr_claims(self):
        key, fields = self.request_svid()
        expected = "spiffe://meshtls.local/uid/%d" % self.uid
        check(fields[TAG_SPIFFE_ID][0].decode() == expected,
              "SPIFFE_ID is %r, expected %r" % (fields[TAG_SPIFFE_ID][0], expected))
        check(len(fields.get(TAG_CERT, [])) >= 1 and len(fields.get(TAG_BUNDLE, [])) >= 1,
              "reply lacks CERT or BUNDLE")
        leaf = der_to_pem(fields[TAG_CERT][0], os.path.join(self.workdir, "leaf.pem"))
        bundle = os.path.join(self.workdir, "bundle.pem")
        with open(bundle, "w") as out:
            for anchor in fields[TAG_BUNDLE]:
                out.write(openssl("x509", "-inform", "DER", input_bytes=anchor).stdout.decode())

        text = openssl("x509", "-in", leaf, "-noout", "-text").stdout.decode()
        uris = [word.strip(",") for word in text.split() if word.startswith("URI:")]
        check(uris == ["URI:" + expected], "leaf URI SANs are %r, expected exactly %r" % (uris, expected))
        check("admin" not in text, "the leaf carries a name the CSR asked for:\n" + text)
        check("CA:FALSE" in text, "leaf is not CA:FALSE")
        check("Digital Signature" in text, "leaf keyUsage lacks digitalSignature")
        check("TLS Web Server Authentication" in text and "TLS Web Client Authentication" in text,
              "leaf EKU is not serverAuth+clientAuth")
        for purpose in ("sslclient", "sslserver"):
            result = openssl("verify", "-CAfile", bundle, "-purpose", purpose, leaf, ok=False)
            check(result.returncode == 0 and b": OK" in result.stdout,
                  "openssl verify -purpose %s failed: %s" % (purpose, result.stderr.decode()))

        leaf_key = openssl("x509", "-in", leaf, "-noout", "-pubkey").stdout
        csr_key = openssl("pkey", "-in", key, "-pubout").stdout
        check(leaf_key == csr_key, "leaf public key is not the CSR's key")

        (expiry,) = struct.unpack(">Q", fields[TAG_EXPIRY][0])
        check(abs(expiry - (time.time() + DAY)) < 120, "EXPIRY %d is not now + 24 h" % expiry)
        end = openssl("x509", "-in", leaf, "-noout", "-enddate").stdout.decode().strip()
        end_epoch = int(subprocess.run(["date", "-u", "-d", end.split("=", 1)[1], "+%s"],
                                       capture_output=True, check=True).stdout)
        check(end_epoch == expiry, "EXPIRY %d differs from the leaf's notAfter %d" % (expiry, end_epoch))

        message_type, id_fields = exchange(self.socket_path, frame(ID_REQUEST))
        check(message_type == ID_RESPONSE and id_fields[TAG_SPIFFE_ID][0].decode() == expected,
              "ID_REQUEST answered %d %r" % (message_type, id_fields))

    def expect_refusal(self, data, expected_code, what):
        """The agent answers data with an ERROR of expected_code (or just closes) promptly."""
        with connect(self.socket_path) as sock:
            sock.sendall(data)
            started = time.monotonic()
            reply = read_until_close(sock, 2 * REQUEST_TIMEOUT)
        check(reply is not None, "%s: agent neither answered nor closed" % what)
        if reply:
            message_type, fields = parse_frame(reply)
            check(message_type == ERROR, "%s: expected ERROR, got type %d" % (what, message_type))
            code, _ = error_of(fields)
            check(code == expected_code, "%s: error code %d, expected %d" % (what, code, expected_code))
        check(time.monotonic() - started < PROMPT, "%s: refusal took more than %.0f s" % (what, PROMPT))

    def timed_svid_request(self):
        started = time.monotonic()
        self.request_svid()
        return time.monotonic() - started

    def test_hostile_input_refused_while_others_are_served(self):
        _, csr = make_csr(self.workdir, "spiffe://meshtls.local/admin")
        self.expect_refusal(b"GET / HTTP/1.0\r\n\r\n", ERR_MALFORMED, "garbage bytes")
        self.expect_refusal(frame(SVID_REQUEST, magic=b"XX"), ERR_MALFORMED, "bad magic")
        self.expect_refusal(frame(SVID_REQUEST, tlv(TAG_CSR, csr), version=9), ERR_UNSUPPORTED,
                            "unsupported version")
        # Only the header is sent: the agent must judge the length without waiting for a body.
        self.expect_refusal(frame(SVID_REQUEST, declared=MAX_PAYLOAD + 1), ERR_MALFORMED,
                            "declared-oversized length")
        self.expect_refusal(frame(SVID_RESPONSE, tlv(TAG_SPIFFE_ID, b"x")), ERR_UNSUPPORTED,
                            "a reply type sent as a request")
        self.expect_refusal(frame(SVID_REQUEST, tlv(TAG_CSR, b"not a CSR")), ERR_BAD_CSR,
                            "garbage CSR")
        self.expect_refusal(frame(SVID_REQUEST, tlv(TAG_CSR, csr)[:-1] + struct.pack(">HI", 1, 99)),
                            ERR_MALFORMED, "TLV running past the payload")
        tampered = bytearray(csr)
        tampered[-5] ^= 0x01  # inside the signature
        self.expect_refusal(frame(SVID_REQUEST, tlv(TAG_CSR, bytes(tampered))), ERR_BAD_CSR,
                            "CSR with a broken self-signature")

        # A truncated frame followed by silence, and a client that sends nothing at all: both
        # must be timed out, and must not delay anyone else meanwhile.
        whole = frame(SVID_REQUEST, tlv(TAG_CSR, csr))
        slow = connect(self.socket_path)
        slow.sendall(whole[: len(whole) // 2])
        silent = connect(self.socket_path)
        opened = time.monotonic()
        elapsed = self.timed_svid_request()
        check(elapsed < PROMPT, "a well-formed request took %.2f s beside a stalled client" % elapsed)
        for name, sock in (("truncated", slow), ("silent", silent)):
            remaining = max(0.1, REQUEST_TIMEOUT + 3 - (time.monotonic() - opened))
            reply = read_until_close(sock, remaining)
            sock.close()
            check(reply is not None, "the %s client was not timed out" % name)
            check(time.monotonic() - opened >= REQUEST_TIMEOUT - 0.5,
                  "the %s client was dropped before its deadline" % name)

        # Truncated, then the client hangs up: logged and dropped, nothing else.
        with connect(self.socket_path) as sock:
            sock.sendall(whole[:20])
            sock.shutdown(socket.SHUT_WR)
            check(read_until_close(sock, 2.0) is not None, "half-closed truncated client left open")

        # More clients than the agent takes at once: the extra ones are closed, the agent lives,
        # and once they leave, service resumes.
        crowd = []
        try:
            for _ in range(300):
                crowd.append(connect(self.socket_path))
        except OSError:
            pass
        time.sleep(0.2)
        check(self.agent.is_alive(), "agent died under %d concurrent connections" % len(crowd))
        for sock in crowd:
            sock.close()
        time.sleep(0.2)
        elapsed = self.timed_svid_request()
        check(elapsed < PROMPT, "service did not resume after the crowd left (%.2f s)" % elapsed)

        # Many partial requests in parallel, each on its own thread, beside a good one.
        def stall():
            try:
                with connect(self.socket_path) as sock:
                    sock.sendall(whole[:9])
                    read_until_close(sock, REQUEST_TIMEOUT + 3)
            except OSError:
                pass

        threads = [threading.Thread(target=stall) for _ in range(20)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        elapsed = self.timed_svid_request()
        check(elapsed < PROMPT, "request took %.2f s beside 20 stalled clients" % elapsed)
        for thread in threads:
            thread.join()
        check(self.agent.is_alive(), "agent died after hostile input")

    def test_second_agent_refused_and_stale_socket_replaced(self):
        status, stderr = run_agent_to_exit(
            self.binary, ["--socket", self.socket_path, "--state-dir", self.state_dir])
        check(status != 0, "a second agent on the same socket started")
        check("already serving" in stderr and self.socket_path in stderr,
              "second agent's message is unclear: %r" % stderr)
        check(self.agent.is_alive(), "the second agent disturbed the first")

        # SIGKILL leaves the socket file behind; the next agent must replace it.
        self.agent.stop(signal.SIGKILL)
        check(os.path.exists(self.socket_path), "test premise: SIGKILL should leave the socket")
        self.start()
        self.request_svid()

        status, stderr = run_agent_to_exit(self.binary, ["--state-dir", self.state_dir, "--bogus"])
        check(status != 0 and "bogus" in stderr, "bad argument not refused clearly: %r" % stderr)

    def test_sigterm_exits_zero_and_removes_socket(self):
        status = self.agent.stop(signal.SIGTERM)
        check(status == 0, "agent exited %d on SIGTERM" % status)
        check(not os.path.exists(self.socket_path), "socket left behind after SIGTERM")

    def test_refuses_foreign_or_exposed_ca(self):
        arguments = ["--socket", self.socket_path, "--state-dir", self.state_dir]
        status, stderr = run_agent_to_exit(self.binary, arguments + ["--trust-domain", "other.org"])
        check(status != 0 and "meshtls.local" in stderr and "other.org" in stderr,
              "trust domain mismatch not refused clearly: %r" % stderr)

        exposed = os.path.join(self.workdir, "exposed-state")
        shutil.copytree(self.state_dir, exposed)
        os.chmod(os.path.join(exposed, "ca.key"), 0o644)
        status, stderr = run_agent_to_exit(
            self.binary, ["--socket", self.socket_path, "--state-dir", exposed])
        check(status != 0 and "ca.key" in stderr and "0644" in stderr,
              "a 0644 ca.key was not refused clearly: %r" % stderr)
        check(not os.path.exists(self.socket_path), "a refused start left its socket behind")

    def make_openssl_ca(self, name, start, end):
        """A state dir holding a CA made by openssl ca (PKCS#8 key), valid from start to end."""
        directory = os.path.join(self.workdir, name)
        os.makedirs(directory, mode=0o700)
        work = os.path.join(directory, "openssl")
        os.makedirs(work)
        with open(os.path.join(work, "ca.cnf"), "w") as f:
            f.write(OPENSSL_CA_CONFIG)
        open(os.path.join(work, "index.txt"), "w").close()
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("01\n")
        key = os.path.join(directory, "ca.key")
        old_umask = os.umask(0o077)
        try:
            openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
        finally:
            os.umask(old_umask)
        request = os.path.join(work, "ca.csr")
        openssl("req", "-new", "-key", key, "-subj", "/O=operator", "-out", request)
        subprocess.run(
            ["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign", "-keyfile", key,
             "-in", request, "-startdate", start, "-enddate", end, "-notext",
             "-out", os.path.join(directory, "ca.crt")],
            cwd=work, capture_output=True, check=True)
        return directory

    def test_openssl_made_ca_used_and_expired_one_refused(self):
        state = self.make_openssl_ca("operator-state", "20200101000000Z", "20991231235959Z")
        self.start(state_dir=state)
        _, fields = self.request_svid()
        leaf = der_to_pem(fields[TAG_CERT][0], os.path.join(self.workdir, "operator-leaf.pem"))
        result = openssl("verify", "-CAfile", os.path.join(state, "ca.crt"), "-purpose",
                         "sslclient", leaf, ok=False)
        check(result.returncode == 0, "leaf from an openssl-made CA does not verify: %s"
              % result.stderr.decode())
        check(self.agent.stop() == 0, "agent did not exit 0")

        expired = self.make_openssl_ca("expired-state", "20200101000000Z", "20210101000000Z")
        status, stderr = run_agent_to_exit(
            self.binary, ["--socket", self.socket_path, "--state-dir", expired])
        check(status != 0 and "expired" in stderr, "an expired CA was not refused: %r" % stderr)

    def test_config_rule_decides_identity(self):
        # The agent sees the resolved interpreter (/usr/bin/python3.11 for /usr/bin/python3).
        interpreter = os.readlink("/proc/self/exe")
        check(os.path.basename(interpreter).startswith("python3"),
              "test premise: run me with python3, not %s" % interpreter)
        pattern = os.path.join(os.path.dirname(interpreter), "python3*")
        config = os.path.join(self.workdir, "agent.conf")
        with open(config, "w") as f:
            f.write(
                "trust_domain = \"meshtls.local\";\n"
                "lifetime = 3600;\n"
                "rules = (\n"
                "  { exe = \"/usr/bin/curl\"; id = \"ns/web/sa/curl\"; },\n"
                "  { uid = %d; exe = \"%s\"; id = \"ns/test/sa/py-{uid}\"; }\n"
                ");\n" % (self.uid, pattern)
            )
        self.start(["--config", config])
        _, fields = self.request_svid()
        expected = "spiffe://meshtls.local/ns/test/sa/py-%d" % self.uid
        check(fields[TAG_SPIFFE_ID][0].decode() == expected,
              "rule not applied: got %r, expected %r" % (fields[TAG_SPIFFE_ID][0], expected))
        (expiry,) = struct.unpack(">Q", fields[TAG_EXPIRY][0])
        check(abs(expiry - (time.time() + 3600)) < 120, "config lifetime 3600 not applied")
        check(self.agent.stop() == 0, "agent did not exit 0")

        # The command line overrides the file.
        self.start(["--config", config, "--lifetime", "600"])
        _, fields = self.request_svid()
        (expiry,) = struct.unpack(">Q", fields[TAG_EXPIRY][0])
        check(abs(expiry - (time.time() + 600)) < 120, "--lifetime did not override the config")
        check(self.agent.stop() == 0, "agent did not exit 0")

        bad = os.path.join(self.workdir, "bad.conf")
        cases = [
            ("lifetime = 86400;\nrules = (\n  { uid = 1; id = \"ns/a\"; colour = \"red\"; }\n);\n",
             "%s:3: rules[0]: unknown key \"colour\";" % bad),
            ("trust_domain = \"meshtls.local\";\nlifetime = \"long\";\n", "%s:2: lifetime:" % bad),
            ("rules = (\n  { uid = 1; id = \"ns//x\"; }\n);\n", "%s:2: rules[0].id:" % bad),
            ("lifetime = 86400\nrules = ;\n", "%s:2:" % bad),
        ]
        for text, expected_prefix in cases:
            with open(bad, "w") as f:
                f.write(text)
            status, stderr = run_agent_to_exit(
                self.binary, ["--socket", self.socket_path, "--state-dir", self.state_dir,
                              "--config", bad])
            check(status != 0, "malformed config accepted:\n" + text)
            check(expected_prefix in stderr,
                  "config error does not name %r:\n%s" % (expected_prefix, stderr))

    def run(self):
        tests = [
            self.test_ca_created_then_reused,
            self.test_svid_issued_for_uid_whatever_the_csr_claims,
            self.test_hostile_input_refused_while_others_are_served,
            self.test_second_agent_refused_and_stale_socket_replaced,
            self.test_sigterm_exits_zero_and_removes_socket,
            self.test_refuses_foreign_or_exposed_ca,
            self.test_openssl_made_ca_used_and_expired_one_refused,
            self.test_config_rule_decides_identity,
        ]
        for test in tests:
            started = time.monotonic()
            try:
                test()
            except Exception:
                print("FAIL %s" % test.__name__)
                self.dump_log()
                raise
            print("ok   %s (%.1f s)" % (test.__name__, time.monotonic() - started))

    def dump_log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                sys.stderr.write("---- agent log ----\n" + f.read()[-8000:] + "-------------------\n")
        except OSError:
            pass

    def cleanup(self):
        if self.agent is not None and self.agent.is_alive():
            self.agent.process.kill()
            self.agent.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", required=True, help="path to the meshtls-agent binary")
    parser.add_argument("--workdir", required=True, help="scratch directory (created if missing)")
    arguments = parser.parse_args()

    os.makedirs(arguments.workdir, exist_ok=True)
    # A fresh directory per run; the socket path must stay under sun_path's 108 bytes.
    workdir = tempfile.mkdtemp(prefix="agent-", dir=arguments.workdir)
    suite = Suite(os.path.abspath(arguments.agent), workdir)
    try:
        suite.run()
    except CheckFailed as failure:
        print("agent_protocol: FAILED: %s" % failure, file=sys.stderr)
        return 1
    finally:
        suite.cleanup()
    shutil.rmtree(workdir, ignore_errors=True)
    print("agent_protocol: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
