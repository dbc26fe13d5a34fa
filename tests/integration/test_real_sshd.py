"""OpenSSH's sshd meshed: a privilege-separated server whose one connection is used in turn by
three processes. sshd re-executes itself for each connection (the accepted socket crosses exec
unstarted); the new image (the monitor) completes the TLS handshake and exchanges banners, forks
the pre-authentication child, which confines itself with seccomp and carries key exchange and
authentication, then exits; the monitor forks the post-authentication child, which runs the
session on the same stream. The record state must follow the stream from child to child.

The meshed ssh client logs in as root with a key (AuthorizedKeysFile in a temporary directory),
runs `echo` and a bulk `cat` of a file, both checked; the wire (a recording relay) carries only
TLS 1.3 records (no SSH banner in clear), and a plaintext client gets no SSH banner."""

import os
import shutil
import socket
import subprocess

from harness import (Mesh, Relay, assert_relay_tls13, check, free_port, main, random_token,
                     run_meshed, sha256_bytes, skip, skip_without_session_export,
                     start_meshed_server, write_random_file)

SSHD = "/usr/sbin/sshd"
SSH = shutil.which("ssh") or "/usr/bin/ssh"
KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
BULK = 2 * 1024 * 1024


def prepare(directory, port):
    subprocess.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f",
                    os.path.join(directory, "host_key")], check=True)
    subprocess.run([KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f",
                    os.path.join(directory, "user_key")], check=True)
    shutil.copy(os.path.join(directory, "user_key.pub"),
                os.path.join(directory, "authorized_keys"))
    config = os.path.join(directory, "sshd_config")
    with open(config, "w") as f:
        f.write(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {directory}/host_key
PidFile none
AuthorizedKeysFile {directory}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
""")
    # The privilege-separation directory sshd chroots its pre-authentication child into.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return config


def ssh_argv(directory, port, command):
    return [SSH, "-i", os.path.join(directory, "user_key"), "-p", str(port),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1", command]


def plaintext_refused(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
        plain.sendall(b"SSH-2.0-plaintext\r\n")
        try:
            answer = plain.recv(100)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    check(b"SSH-" not in answer, f"a plaintext client got an SSH banner: {answer!r}")


def test():
    if os.geteuid() != 0:
        skip("sshd's privilege separation needs root")
    if not os.path.exists(SSHD):
        skip("openssh-server is not installed (packaging/install-deps.sh)")
    # test_fork_sequential.py checks that build's fail-closed relay, sandboxed child included.
    skip_without_session_export("the pre-authentication child cannot give the record state back "
                                "for the post-authentication child (no session export)")
    with Mesh("real-sshd") as mesh:
        mesh.start_agent()
        port = free_port()
        config = prepare(mesh.dir, port)
        server = start_meshed_server(mesh, "sshd", [SSHD, "-D", "-e", "-f", config], port)
        relay = Relay(port)
        token = random_token(16)
        status, output, errors = run_meshed(
            mesh, "ssh-echo", ssh_argv(mesh.dir, relay.port, f"echo {token}"), 60)
        check(status == 0 and output.strip() == token,
              f"ssh echo: {status} {output!r}\n{errors[-3000:]}\nsshd:\n{server.stderr()[-5000:]}")
        bulk = os.path.join(mesh.dir, "bulk")
        digest = write_random_file(bulk, BULK, marker=token.encode())
        cat = mesh.meshed("ssh-cat", ssh_argv(mesh.dir, relay.port, f"cat {bulk}"))
        status = cat.wait(120)
        received = cat.stdout()
        check(status == 0 and len(received) == BULK and sha256_bytes(received) == digest,
              f"ssh cat: {status}, {len(received)} bytes\n{cat.stderr()[-3000:]}\n"
              f"sshd:\n{server.stderr()[-5000:]}")
        assert_relay_tls13(relay, [token.encode(), b"SSH-2.0"], expected_connections=2)
        plaintext_refused(port)
        print(f"sshd: echo and a {BULK}-byte cat through the monitor, the sandboxed pre-auth child "
              f"and the post-auth child; TLS 1.3 on the wire; plaintext refused")


if __name__ == "__main__":
    main(test)
