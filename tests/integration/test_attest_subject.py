"""A supervisor holds the identity of the program it runs, attested through a pidfd; nobody gets
another process's identity that way.

One agent whose rules give /usr/bin/sleep ns/supervised/sa/sleeper, this Python interpreter
ns/test/sa/python and the supervisor helper ns/test/sa/supervisor. Requests name a SUBJECT and
pass its pidfd with SCM_RIGHTS (identity/proto.h), spoken from here byte by byte, and through
the real identity client by subject_supervisor (a fork, an exec of sleep, then
mt_identity_supervise).

Granted, and checked on the wire: the supervisor's child gets the CHILD's SPIFFE ID (ID reply,
and the URI SAN of the issued leaf as openssl reads it), its metrics file is named by the child's
pid, `meshtls status` lists the child as supervised by the supervisor's pid; a pidfd of the
caller itself is just the caller.
Refused, logged with caller pid, subject pid and reason, and answered with an ERROR: a sibling,
the caller's own parent, a grandchild, a child under another uid (as root only: starting one
needs root), a process in a pid namespace the agent cannot see (its own, under unshare), a
zombie, a subject reaped between the request's first bytes and its last (no
certificate), a descriptor that is not a pidfd, two descriptors, a SUBJECT without a
descriptor and a descriptor without a SUBJECT.
"""

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

from agent_protocol import make_csr
from harness import (AGENT, ASAN_RUNTIME, BUILD, MESHTLS, Mesh, base_env, check, main,
                     wait_agent_ready, wait_for)
from lifecycle_common import status_records

SUPERVISOR = os.path.join(BUILD, "tests", "integration", "subject_supervisor")
SLEEP = os.path.realpath(shutil.which("sleep") or "/usr/bin/sleep")
PYTHON_EXE = os.path.realpath("/proc/self/exe")
TD = "spiffe://meshtls.local"
SLEEPER_ID = TD + "/ns/supervised/sa/sleeper"
PYTHON_ID = TD + "/ns/test/sa/python"
SUPERVISOR_ID = TD + "/ns/test/sa/supervisor"

# identity/proto.h
VERSION, VERSION_SUBJECT = 1, 2
SVID_REQUEST, SVID_RESPONSE, ERROR, ID_REQUEST, ID_RESPONSE = 1, 2, 3, 4, 5
METRICS_FILE_REQUEST, METRICS_FILE_RESPONSE = 8, 9
TAG_CSR, TAG_SPIFFE_ID, TAG_ERROR_CODE, TAG_MESSAGE, TAG_PID, TAG_SUBJECT = 1, 2, 6, 7, 9, 11
ERR_MALFORMED, ERR_DENIED = 1, 3
LOG_INTERVAL = 10.0  # MT_LOG_LIMIT_INTERVAL_MS


def tlv(tag, value):
    return struct.pack(">HI", tag, len(value)) + value


SUBJECT = tlv(TAG_SUBJECT, struct.pack(">I", 1))


def frame(message_type, payload=b"", version=VERSION):
    return b"MT" + bytes([version, message_type]) + struct.pack(">I", len(payload)) + payload


def parse(data):
    check(len(data) >= 8 and data[:2] == b"MT", f"reply is not a frame: {data[:16]!r}")
    (length,) = struct.unpack(">I", data[4:8])
    check(len(data) == 8 + length, f"reply of {len(data)} bytes, header says {8 + length}")
    fields, payload = {}, data[8:]
    while payload:
        tag, size = struct.unpack(">HI", payload[:6])
        fields.setdefault(tag, []).append(payload[6:6 + size])
        payload = payload[6 + size:]
    return data[3], fields


class Reply:
    def __init__(self, data, fds):
        self.type, self.fields = parse(data)
        self.fds = fds

    def text(self, tag):
        return self.fields[tag][0].decode(errors="replace")

    def error(self):
        if self.type != ERROR:
            return None, None
        return struct.unpack(">I", self.fields[TAG_ERROR_CODE][0])[0], self.text(TAG_MESSAGE)

    def close(self):
        for fd in self.fds:
            os.close(fd)


def ask(sock_path, data, fds=(), split=None, between=None):
    """Sends data with fds on its first byte; with split, the first split bytes, then between(),
    then the rest. Returns the Reply (with any descriptor it passed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        first = data if split is None else data[:split]
        if fds:
            check(socket.send_fds(s, [first], list(fds)) == len(first), "short send_fds")
        else:
            s.sendall(first)
        if split is not None:
            time.sleep(0.2)  # the agent has read the first bytes and the pidfd by now
            between()
            s.sendall(data[split:])
        reply, passed = b"", []
        for _ in range(1000):
            chunk, fds_in, _, _ = socket.recv_fds(s, 65536, 4)
            passed += fds_in
            if not chunk:
                break
            reply += chunk
    return Reply(reply, passed)


def id_request(subject=True):
    return frame(ID_REQUEST, SUBJECT, VERSION_SUBJECT) if subject else frame(ID_REQUEST)


def spawn_sleeper():
    """A child of this process running sleep (Popen returns once it has exec'd)."""
    return subprocess.Popen([SLEEP, "60"])


def status_line(pid, name):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((line.split()[1:] for line in f if line.startswith(name + ":")), None)
    except OSError:
        return None


def in_child(function):
    """Runs function in a forked child of this process; returns its result (JSON) and the
    child's pid."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            result = function()
        except BaseException as error:  # reported to the parent, which fails the check
            result = {"exception": repr(error)}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data or b"{}"), pid


def refusal(reply):
    code, message = reply.error()
    return {"code": code, "message": message, "type": reply.type}


class Checks:
    def __init__(self, mesh, sock, agent):
        self.mesh, self.sock, self.agent = mesh, sock, agent
        self.failures = []
        self.me = os.getpid()

    def expect(self, condition, what):
        if not condition:
            self.failures.append(what)
        return condition

    def expect_refused(self, name, result, code, reason, caller, subject):
        """result: refusal() of the reply. Refused with code and reason, and logged naming the
        caller and (when known) the subject."""
        if not self.expect(result.get("code") == code and reason in (result.get("message") or ""),
                           f"{name}: expected code {code} with {reason!r}, got {result}"):
            return
        subject_text = f"subject pid {subject} refused" if subject else ""
        line = f"refused pid {caller} uid {os.getuid()} exe "

        def logged():
            return any(line in entry and subject_text in entry and reason in entry
                       for entry in self.agent.stderr().splitlines())
        try:
            wait_for(logged, 5, f"the agent's log line for {name}")
        except Exception:  # noqa: BLE001 - collected, reported with the others
            self.failures.append(f"{name}: no log line with {line!r}, {subject_text!r} and "
                                 f"{reason!r}")

    def child_gets_its_own_identity(self):
        sleeper = spawn_sleeper()
        pidfd = os.pidfd_open(sleeper.pid)
        try:
            reply = ask(self.sock, id_request(), [pidfd])
            self.expect(reply.type == ID_RESPONSE and reply.text(TAG_SPIFFE_ID) == SLEEPER_ID,
                        f"ID for the child: {reply.type} {reply.fields}")
            # The other orientation: without a subject, the caller's own identity.
            reply = ask(self.sock, id_request(subject=False))
            self.expect(reply.type == ID_RESPONSE and reply.text(TAG_SPIFFE_ID) == PYTHON_ID,
                        f"ID for the caller: {reply.type} {reply.fields}")
            # A pidfd of the caller itself names the caller.
            own = os.pidfd_open(self.me)
            reply = ask(self.sock, id_request(), [own])
            os.close(own)
            self.expect(reply.type == ID_RESPONSE and reply.text(TAG_SPIFFE_ID) == PYTHON_ID,
                        f"ID for a pidfd of the caller: {reply.type} {reply.fields}")
            # An SVID: the leaf on the wire names the child.
            key, csr = make_csr(self.mesh.dir, PYTHON_ID)
            data = frame(SVID_REQUEST, tlv(TAG_CSR, csr) + SUBJECT, VERSION_SUBJECT)
            reply = ask(self.sock, data, [pidfd])
            if self.expect(reply.type == SVID_RESPONSE, f"SVID for the child: {reply.error()}"):
                uri = leaf_uri(self.mesh.dir, reply.fields[3][0])
                self.expect(uri == SLEEPER_ID, f"the child's leaf names {uri}")
            # The metrics file is the child's.
            reply = ask(self.sock, frame(METRICS_FILE_REQUEST, SUBJECT, VERSION_SUBJECT), [pidfd])
            if self.expect(reply.type == METRICS_FILE_RESPONSE and len(reply.fds) == 1,
                           f"metrics file for the child: {reply.error()}"):
                (pid,) = struct.unpack(">I", reply.fields[TAG_PID][0])
                name = os.path.basename(os.readlink(f"/proc/self/fd/{reply.fds[0]}"))
                self.expect(pid == sleeper.pid and name.startswith(f"{sleeper.pid}-"),
                            f"metrics file of pid {pid}, named {name}, not the child's")
            reply.close()
            log = self.agent.stderr()
            self.expect(f"issued {SLEEPER_ID} to pid {sleeper.pid} uid {os.getuid()} exe {SLEEP} "
                        f"(supervised by pid {self.me})" in log,
                        "the issuance to the child is not logged as supervised")
        finally:
            os.close(pidfd)
            sleeper.kill()
            sleeper.wait()

    def not_a_child_refused(self):
        sleeper = spawn_sleeper()
        pidfd = os.pidfd_open(sleeper.pid)
        parent = os.pidfd_open(self.me)
        try:
            # A sibling: a forked child of this process names another child of it.
            result, caller = in_child(lambda: refusal(ask(self.sock, id_request(), [pidfd])))
            self.expect_refused("sibling", result, ERR_DENIED, "is not a child of the caller",
                                caller, sleeper.pid)
            # Its own parent.
            result, caller = in_child(lambda: refusal(ask(self.sock, id_request(), [parent])))
            self.expect_refused("own parent", result, ERR_DENIED, "is not a child of the caller",
                                caller, self.me)
        finally:
            os.close(pidfd)
            os.close(parent)
            sleeper.kill()
            sleeper.wait()

        # A grandchild: a child of a forked child.
        read_end, write_end = os.pipe()
        middle = os.fork()
        if middle == 0:
            grandchild = spawn_sleeper()
            os.write(write_end, str(grandchild.pid).encode())
            os.close(write_end)
            grandchild.wait()
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as f:
            grandchild = int(f.read())
        pidfd = os.pidfd_open(grandchild)
        try:
            result = refusal(ask(self.sock, id_request(), [pidfd]))
            self.expect_refused("grandchild", result, ERR_DENIED,
                                f"is not a child of the caller: its parent is pid {middle}",
                                self.me, grandchild)
        finally:
            os.close(pidfd)
            os.kill(grandchild, signal.SIGKILL)
            os.waitpid(middle, 0)

    def other_user_refused(self):
        if os.geteuid() != 0:
            print("other user: not run (starting a child under another uid needs root)")
            return
        child = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                  SLEEP, "60"])
        pidfd = os.pidfd_open(child.pid)
        try:
            wait_for(lambda: (status_line(child.pid, "Uid") or [""])[0] == "65534", 10,
                     "the child to run as uid 65534")
            result = refusal(ask(self.sock, id_request(), [pidfd]))
            self.expect_refused("another user's child", result, ERR_DENIED,
                                "never another user's identity", self.me, child.pid)
        finally:
            os.close(pidfd)
            child.kill()
            child.wait()

    def zombie_refused(self):
        child = subprocess.Popen(["/bin/true"])
        pidfd = os.pidfd_open(child.pid)
        try:
            wait_for(lambda: (status_line(child.pid, "State") or [""])[0] == "Z", 10,
                     "the child to exit (unreaped)")
            result = refusal(ask(self.sock, id_request(), [pidfd]))
            self.expect_refused("zombie", result, ERR_DENIED, "a zombie not yet reaped", self.me,
                                child.pid)
        finally:
            os.close(pidfd)
            child.wait()

    def other_pid_namespace_refused(self):
        """An agent in a pid namespace of its own sees neither this caller nor its child: the
        pidfd names a pid it cannot see, which is refused, not attested as someone else."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            print("other pid namespace: not run (needs root and unshare(1))")
            return
        sock = os.path.join(self.mesh.dir, "pidns-agent.sock")
        env = base_env()
        if ASAN_RUNTIME:
            env.pop("LD_PRELOAD", None)
            env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
        agent = self.mesh.spawn("pidns-agent", [
            "unshare", "--pid", "--fork", "--mount-proc", AGENT, "--socket", sock, "--state-dir",
            os.path.join(self.mesh.dir, "pidns-state"), "--metrics-address", "off"], env=env)
        wait_agent_ready(agent, sock, "the agent in its own pid namespace")
        sleeper = spawn_sleeper()
        pidfd = os.pidfd_open(sleeper.pid)
        try:
            result = refusal(ask(sock, id_request(), [pidfd]))
            self.expect(result.get("code") == ERR_DENIED and
                        "pid namespace the agent cannot see" in (result.get("message") or ""),
                        f"other pid namespace: {result}")
            self.expect("subject pid 0 refused: the subject is in a pid namespace the agent "
                        "cannot see" in agent.stderr(),
                        f"other pid namespace: not logged:\n{agent.stderr()[-1000:]}")
        finally:
            os.close(pidfd)
            sleeper.kill()
            sleeper.wait()
            # unshare --fork ignores SIGTERM while its child runs: the agent is told directly.
            agent.signal_group(signal.SIGTERM)
            agent.wait(10)
            agent.stop()

    def death_before_the_answer_gives_no_certificate(self):
        _, csr = make_csr(self.mesh.dir, SLEEPER_ID)
        data = frame(SVID_REQUEST, tlv(TAG_CSR, csr) + SUBJECT, VERSION_SUBJECT)
        for reaped, reason in ((True, "has exited and been reaped"), (False, "a zombie")):
            sleeper = spawn_sleeper()
            pidfd = os.pidfd_open(sleeper.pid)

            def die():
                sleeper.kill()
                if reaped:
                    sleeper.wait()
                else:
                    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
            try:
                reply = ask(self.sock, data, [pidfd], split=4, between=die)
                self.expect(reply.type != SVID_RESPONSE,
                            f"a certificate for a subject that died ({reason})")
                self.expect_refused(f"died before the answer ({reason})", refusal(reply),
                                    ERR_DENIED, reason, self.me, 0 if reaped else sleeper.pid)
            finally:
                os.close(pidfd)
                sleeper.kill()
                sleeper.wait()

    def malformed_descriptors_refused(self):
        # The agent logs at most 10 refusals per 10 s (util/log.h, by design: any local process
        # can cause them); the seven above used that interval's lines.
        time.sleep(LOG_INTERVAL + 0.5)
        sleeper = spawn_sleeper()
        pidfd = os.pidfd_open(sleeper.pid)
        read_end, write_end = os.pipe()
        try:
            cases = [
                ("not a pidfd", id_request(), [read_end], "is not a pidfd"),
                ("two descriptors", id_request(), [pidfd, read_end], "more than one descriptor"),
                ("SUBJECT without a descriptor", id_request(), [], "carries no pidfd"),
                ("descriptor without a SUBJECT", id_request(subject=False), [pidfd],
                 "names no SUBJECT"),
                ("SUBJECT in a version 1 frame", frame(ID_REQUEST, SUBJECT), [pidfd],
                 "needs protocol version 2"),
            ]
            for name, data, fds, reason in cases:
                result = refusal(ask(self.sock, data, fds))
                self.expect_refused(name, result, ERR_MALFORMED, reason, self.me, 0)
        finally:
            for fd in (pidfd, read_end, write_end):
                os.close(fd)
            sleeper.kill()
            sleeper.wait()

    def supervisor_helper_gets_its_child(self):
        leaf = os.path.join(self.mesh.dir, "child-leaf.der")
        helper = subprocess.Popen([SUPERVISOR, self.sock, str(os.geteuid()), leaf, SLEEP, "60"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        lines = {}
        try:
            for _ in range(10):
                line = helper.stdout.readline().split(" ", 1)
                if len(line) != 2 and line[0].strip() != "ready":
                    break
                if line[0].strip() == "ready":
                    lines["ready"] = True
                    break
                lines[line[0]] = line[1].strip()
            if not self.expect(lines.get("ready"), f"subject_supervisor failed: {lines} "
                                                    f"{helper.stderr.read() if helper.poll() else ''}"):
                return
            child = int(lines["child"])
            self.expect(lines["id"] == SLEEPER_ID and lines["svid"] == SLEEPER_ID,
                        f"the supervisor got {lines['id']} / {lines['svid']}, not its child's")
            self.expect(leaf_uri(self.mesh.dir, open(leaf, "rb").read()) == SLEEPER_ID,
                        "the supervisor's leaf does not name its child")
            self.expect(os.path.basename(lines["metrics"]).startswith(f"{child}-"),
                        f"metrics file {lines['metrics']} is not the child's")
            records = [r for r in status_records(self.sock)
                       if r[0] == "process" and int(r[1]) == child]
            self.expect(len(records) == 1 and records[0][4] == SLEEPER_ID and
                        len(records[0]) > 8 and records[0][8] == str(helper.pid),
                        f"STATUS does not show the child as supervised by {helper.pid}: {records}")
            cli = subprocess.run([MESHTLS, "status", "--socket", self.sock], capture_output=True,
                                 text=True, timeout=30)
            self.expect(f"(supervised by pid {helper.pid}," in cli.stdout and
                        SLEEPER_ID in cli.stdout,
                        f"`meshtls status` misses the supervision:\n{cli.stdout}{cli.stderr}")
        finally:
            helper.stdin.close()
            helper.wait(timeout=20)


def leaf_uri(directory, der):
    path = os.path.join(directory, "leaf.der")
    with open(path, "wb") as f:
        f.write(der)
    text = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", path, "-noout", "-ext",
                           "subjectAltName"], capture_output=True, text=True).stdout
    uris = [part.strip()[4:] for part in text.replace("\n", ",").split(",")
            if part.strip().startswith("URI:")]
    return uris[0] if len(uris) == 1 else uris


def test():
    config = (f'trust_domain = "meshtls.local";\n'
              f'rules = (\n'
              f'  {{ exe = "{SLEEP}"; id = "ns/supervised/sa/sleeper"; }},\n'
              f'  {{ exe = "{PYTHON_EXE}"; id = "ns/test/sa/python"; }},\n'
              f'  {{ exe = "{os.path.realpath(SUPERVISOR)}"; id = "ns/test/sa/supervisor"; }}\n'
              f');\n')
    with Mesh("attest-subject") as mesh:
        sock = mesh.start_agent(config=config)
        agent = mesh.processes[-1]
        checks = Checks(mesh, sock, agent)
        for case in (checks.child_gets_its_own_identity, checks.not_a_child_refused,
                     checks.other_user_refused, checks.zombie_refused,
                     checks.other_pid_namespace_refused,
                     checks.death_before_the_answer_gives_no_certificate,
                     checks.malformed_descriptors_refused,
                     checks.supervisor_helper_gets_its_child):
            case()
        # The agent served every case and is still serving.
        reply = ask(sock, id_request(subject=False))
        checks.expect(reply.type == ID_RESPONSE, "the agent stopped serving")
        check(not checks.failures, "\n".join(checks.failures))


if __name__ == "__main__":
    main(test)
