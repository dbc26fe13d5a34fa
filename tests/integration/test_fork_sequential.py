"""One meshed connection used in turn by a server and the children it forks, without exec: the
shape of a privilege-separated server (OpenSSH's sshd: the monitor, a sandboxed
pre-authentication child that exits, then the post-authentication child).

sequential_fork_server answers the first line itself, forks child 1 which carries the
conversation on (lines both ways, a bulk download, a long upload) and exits, then forks child 2
which continues the same stream to its end. The record state must follow the stream from process
to process: before, child 2 wrote with the parent's stale sequence numbers and the client failed
("AES-GCM authentication check fail").

  - exit: child 1 ends with exit(0); child 2 continues; the client sees every answer and a clean
    end of stream.
  - sandbox: child 1 is confined to read and write (seccomp, kill by default) before its first
    use of the connection and ends with exit(0) inside the filter.
  - _exit: child 1 cannot give the state back; child 2 fails closed with a log line saying why,
    the client sees the connection reset, never a byte decrypted wrong.
  - between: the parent itself answers a line between the two children (it takes the state
    child 1 gave back, and child 2 continues from the parent's).
  - interleave: the parent writes while child 1 uses the connection: its write fails with a log
    line naming both pids, nothing reaches the client, and child 1 finishes the conversation.

Each run's wire (through a recording relay) carries only TLS 1.3 records; a plaintext client is
refused.

With -Dwolfssl=system (no session export) child 1 cannot give the state back: exit and sandbox
end as _exit does (child 2 fails closed, the client sees a reset), with a log line saying the
build cannot; between, which needs the state given back to the parent, is not run. The client is this file run as `test_fork_sequential.py client PORT MODE SECRET`, a plain
Python socket under `meshtls run`."""

import os
import socket
import sys

from harness import (BUILD, SESSION_EXPORT, Mesh, PYTHON, Relay, assert_plaintext_refused,
                     assert_relay_tls13,
                     check, fail_client, free_port, main, random_token, run_meshed, wait_for)

SERVER = os.path.join(BUILD, "tests", "integration", "sequential_fork_server")
BULK = 300000
UPLOAD = 100000


class Conversation:
    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buffer = b""

    def ask(self, line):
        """The answer line, or None when the stream ended or was reset before it came."""
        try:
            self.socket.sendall(line.encode() + b"\n")
            while b"\n" not in self.buffer:
                chunk = self.socket.recv(65536)
                if not chunk:
                    return None
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return None
        answer, self.buffer = self.buffer.split(b"\n", 1)
        return answer.decode(errors="replace")

    def expect(self, line, answer):
        got = self.ask(line)
        if got != answer:
            fail_client(f"sent {line[:40]!r}: expected {answer[:60]!r}, got "
                        f"{got[:200] if got is not None else 'the end of the stream'!r}")

    def bulk(self, who):
        pattern = "".join(chr(ord("a") + i % 26) for i in range(16384))
        expected = (pattern * (BULK // len(pattern) + 1))[:BULK]
        self.expect(f"bulk {BULK}", expected)

    def end_of_stream(self):
        try:
            rest = self.socket.recv(100)
        except ConnectionResetError:
            fail_client("the stream was reset at its end")
        if rest:
            fail_client(f"bytes after the last answer: {rest[:100]!r}")


def client(port, mode, secret):
    talk = Conversation(port)
    talk.expect(f"hello {secret}", f"parent hello {secret}")
    talk.expect(f"one {secret}", f"child1 one {secret}")
    if mode == "interleave":
        # The parent tried to write between these two answers: nothing of it may arrive.
        talk.expect(f"two {secret}", f"child1 two {secret}")
        talk.bulk("child1")
        talk.expect("bye", "child1 bye")
        talk.end_of_stream()
        print("ok")
        return
    talk.bulk("child1")
    talk.expect("u" * UPLOAD, f"child1 got {UPLOAD}")
    talk.expect("next", "child1 done")
    if mode == "_exit":
        answer = talk.ask(f"two {secret}")
        if answer is not None:
            fail_client(f"child 2 answered {answer[:200]!r} after child 1's _exit")
        print("ok reset")
        return
    if mode == "between":
        talk.expect(f"between {secret}", f"parent between {secret}")
    talk.expect(f"two {secret}", f"child2 two {secret}")
    talk.bulk("child2")
    talk.expect("v" * UPLOAD, f"child2 got {UPLOAD}")
    talk.expect("bye", "child2 bye")
    talk.end_of_stream()
    print("ok")


def start_server(mesh, mode, name):
    port = free_port()
    server = mesh.meshed(name, [SERVER, str(port), mode])
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             f"{name} to listen")
    check(server.popen.poll() is None, f"{name} exited:\n{server.stderr()}")
    return port, server


def one_run(mesh, mode):
    port, server = start_server(mesh, mode, f"server-{mode}")
    relay = Relay(port)
    secret = random_token(16)
    # Without session export a child's exit loses the state as _exit does (README).
    given_back = SESSION_EXPORT or mode not in ("exit", "sandbox")
    client_mode = mode if given_back else "_exit"
    status, output, errors = run_meshed(
        mesh, f"client-{mode}",
        [PYTHON, os.path.abspath(__file__), "client", str(relay.port), client_mode, secret], 60)
    server_status = server.wait(30)
    out = server.stdout().decode(errors="replace")
    log = server.stderr()
    detail = f"\nclient: {output}{errors[-2000:]}\nserver stdout: {out}\nserver log:\n{log[-3000:]}"
    expected_client = "ok reset" if client_mode == "_exit" else "ok"
    check(status == 0 and output.strip() == expected_client,
          f"{mode}: the client failed ({status}){detail}")
    check(server_status == 0 and "child1 exited 0" in out, f"{mode}: child 1{detail}")
    if not given_back:
        check("child2 read: Connection reset by peer" in out and "child2 exited 3" in out,
              f"{mode}: child 2 was not refused the stream it cannot continue{detail}")
        check("cannot give its TLS state back for the next process (not supported by this "
              "build)" in log, f"{mode}: no log line says why child 1 could not give it back"
              f"{detail}")
    elif mode in ("exit", "sandbox", "between"):
        check("child2 exited 0" in out, f"{mode}: child 2 did not finish cleanly{detail}")
    if mode == "_exit":
        check("child2 read: Connection reset by peer" in out and "child2 exited 3" in out,
              f"_exit: child 2 was not refused the lost stream{detail}")
        check("ended while using it without giving its TLS state back" in log,
              f"_exit: no log line says why the stream cannot continue{detail}")
    if mode == "interleave":
        check("parent write: Connection reset by peer" in out,
              f"interleave: the parent's write was not refused{detail}")
        check("cannot use this connection: pid" in log and "is using it" in log,
              f"interleave: no log line names the two processes{detail}")
    assert_relay_tls13(relay, [secret.encode()], expected_connections=1)
    print(f"{mode}: {expected_client}; TLS 1.3 on the wire")


def plaintext_refused(mesh):
    port, server = start_server(mesh, "exit", "server-plain")
    assert_plaintext_refused(port, server, b"hello plaintext\n")
    server.stop()


def test():
    with Mesh("fork-sequential") as mesh:
        mesh.start_agent()
        for mode in ("exit", "sandbox", "between", "_exit", "interleave"):
            if mode == "between" and not SESSION_EXPORT:
                print("between: not run with -Dwolfssl=system (the parent continues from the "
                      "state child 1 gives back, which needs session export)")
                continue
            one_run(mesh, mode)
        plaintext_refused(mesh)
        print("plaintext refused")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "client":
        client(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main(test)
