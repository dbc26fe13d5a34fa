"""packaging/docker/entrypoint.sh, run directly (no container runtime here): it waits for an agent
socket that appears a second later, then execs the command in its own process with LD_PRELOAD set
to the preload, and that command speaks mTLS through the real agent; without a socket it fails,
bounded by MESHTLS_AGENT_WAIT, with a clear message, and never runs the command; bad settings
are refused with a message too. A statically linked command (busybox's wget) is meshed through
`meshtls run`'s system-call supervisor: it fetches from a strict meshed server, which logs its
identity; a set-user-ID command, which nothing can protect, is refused (exit 126, never run)
unless MESHTLS_ALLOW_PLAINTEXT=1."""

import glob
import os
import subprocess
import time

from harness import (AGENT, BUILD, PYTHON, Mesh, base_env, check, free_port, main, wait_agent_ready,
                     wait_for)

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENTRYPOINT = os.path.join(SOURCE, "packaging", "docker", "entrypoint.sh")
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
PRELOAD = os.path.join(BUILD, "libmeshtls-preload.so")


def entrypoint_env(**variables):
    env = base_env()
    env.update(variables)
    return env


def run_entrypoint(mesh, name, argv, env, timeout=15):
    process = mesh.spawn(name, [ENTRYPOINT] + argv, env=env)
    return process, process.wait(timeout)


def test_waits_then_execs(mesh):
    sock = os.path.join(mesh.dir, "late", "agent.sock")
    config = mesh.write_config("late", sock)
    probe = ("import os, subprocess, sys, time\n"
             "print(time.time(), os.getpid(), flush=True)\n"
             "print(os.environ['LD_PRELOAD'], flush=True)\n"
             "print(os.environ['MESHTLS_AGENT_SOCKET'], flush=True)\n"
             "sys.exit(subprocess.call([sys.executable, sys.argv[1], 'greet-client', "
             "sys.argv[2]]))\n")
    port = free_port()
    started = time.time()
    client = mesh.spawn("entrypoint-client", [ENTRYPOINT, PYTHON, "-c", probe, PEERS, str(port)],
                        env=entrypoint_env(MESHTLS_AGENT_SOCKET=sock, MESHTLS_AGENT_WAIT="10",
                                           MESHTLS_PRELOAD=PRELOAD, MESHTLS_CONFIG=config))
    time.sleep(1)
    check(client.popen.poll() is None and client.stdout() == b"",
          f"the entrypoint did not wait for the socket: {client.stdout()!r}\n{client.stderr()}")

    # The agent appears a second late, in the socket directory the entrypoint is watching.
    os.makedirs(os.path.dirname(sock))
    agent = mesh.spawn("late-agent", [AGENT, "--socket", sock, "--state-dir",
                                      os.path.join(mesh.dir, "late-state"),
                                      "--metrics-address", "off"],
                       env=entrypoint_env())
    wait_agent_ready(agent, sock, "the late agent")
    appeared = time.time()
    server = mesh.meshed("greeter", [PYTHON, PEERS, "greeter", str(port)], agent="late")
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the greeter to listen")
    check(server.popen.poll() is None, f"the greeter exited:\n{server.stderr()}")

    status = client.wait(30)
    lines = client.stdout().decode().splitlines()
    check(status == 0 and len(lines) == 5,
          f"the command failed under the entrypoint ({status}): {lines}\n{client.stderr()}")
    exec_time, pid = float(lines[0].split()[0]), int(lines[0].split()[1])
    check(exec_time >= started + 1 and exec_time <= appeared + 5,
          f"the command started {exec_time - started:.2f}s after the entrypoint; the socket "
          f"appeared after {appeared - started:.2f}s")
    check(pid == client.popen.pid, f"the command ran as pid {pid}, not exec'd in place of the "
                                   f"entrypoint (pid {client.popen.pid})")
    check(lines[1].split()[0] == PRELOAD, f"LD_PRELOAD is {lines[1]!r}, not {PRELOAD}")
    check(lines[2] == sock, f"MESHTLS_AGENT_SOCKET is {lines[2]!r}")
    check(lines[3:] == ["220 greeter ready", "250 HELO meshtls"], f"exchange: {lines[3:]}")
    check("mtls outbound to 127.0.0.1" in client.stderr(),
          f"the command's connection was not mTLS:\n{client.stderr()}")
    wait_for(lambda: "mtls inbound from 127.0.0.1" in server.stderr(), 10,
             "the greeter's mtls inbound line")
    print(f"waited {exec_time - started:.2f}s for the socket, exec'd in place with LD_PRELOAD "
          f"set, mTLS exchange done")


def test_no_socket(mesh):
    marker = os.path.join(mesh.dir, "ran")
    sock = os.path.join(mesh.dir, "never", "agent.sock")
    started = time.monotonic()
    process, status = run_entrypoint(
        mesh, "entrypoint-nosocket", ["touch", marker],
        entrypoint_env(MESHTLS_AGENT_SOCKET=sock, MESHTLS_AGENT_WAIT="2",
                       MESHTLS_PRELOAD=PRELOAD))
    elapsed = time.monotonic() - started
    check(status == 1, f"exit status {status} without an agent socket")
    check(1.9 <= elapsed <= 6, f"gave up after {elapsed:.2f}s with MESHTLS_AGENT_WAIT=2")
    check(f"the meshtls agent socket {sock} did not appear within 2s" in process.stderr(),
          f"unclear message: {process.stderr()!r}")
    check(not os.path.exists(marker), "the command ran although the agent never appeared")
    print(f"no socket: exit 1 after {elapsed:.2f}s: {process.stderr().strip()}")


def test_bad_settings(mesh):
    sock = mesh.agents["agent"]
    cases = [
        ("no-command", [], {}, "no command to run"),
        ("bad-wait", ["true"], {"MESHTLS_AGENT_WAIT": "soon"},
         "MESHTLS_AGENT_WAIT must be a whole number of seconds, not 'soon'"),
        ("bad-preload", ["true"], {"MESHTLS_PRELOAD": os.path.join(mesh.dir, "missing.so")},
         "missing.so does not exist"),
    ]
    if not (glob.glob("/usr/lib/*/meshtls/libmeshtls-preload.so") or
            glob.glob("/usr/local/lib/*/meshtls/libmeshtls-preload.so")):
        cases.append(("not-installed", ["true"], {}, "libmeshtls-preload.so is not installed"))
    for name, argv, variables, message in cases:
        env = entrypoint_env(**dict({"MESHTLS_AGENT_SOCKET": sock, "MESHTLS_PRELOAD": PRELOAD},
                                    **variables))
        if name == "not-installed":
            env.pop("MESHTLS_PRELOAD")
        process, status = run_entrypoint(mesh, f"entrypoint-{name}", argv, env)
        check(status != 0 and message in process.stderr(),
              f"{name}: status {status}, stderr {process.stderr()!r}")
    # With the agent there, the command runs at once and its status is the entrypoint's.
    process, status = run_entrypoint(mesh, "entrypoint-status", ["sh", "-c", "exit 7"],
                                     entrypoint_env(MESHTLS_AGENT_SOCKET=sock,
                                                    MESHTLS_PRELOAD=PRELOAD))
    check(status == 7, f"the command's exit status 7 came back as {status}")


BUSYBOX = "/bin/busybox"  # busybox-static (packaging/install-deps.sh)


def test_no_preload_can_enter(mesh):
    """A static command goes to the supervisor; a set-user-ID one is refused."""
    sock = mesh.agents["agent"]
    root = os.path.join(mesh.dir, "www")
    os.makedirs(root)
    token = f"entrypoint-static-{time.time_ns()}"
    with open(os.path.join(root, "index.txt"), "w") as f:
        f.write(token)
    port = free_port()
    server = mesh.http_server("strict-web", port, root)
    env = entrypoint_env(MESHTLS_AGENT_SOCKET=sock, MESHTLS_PRELOAD=PRELOAD,
                         MESHTLS_CONFIG=mesh.configs["agent"])
    process, status = run_entrypoint(
        mesh, "entrypoint-static", [BUSYBOX, "wget", "-q", "-O", "-",
                                    f"http://127.0.0.1:{port}/index.txt"], env, timeout=30)
    check(status == 0 and process.stdout().decode() == token,
          f"busybox wget under the entrypoint ({status}): {process.stdout()!r}\n"
          f"{process.stderr()[-2000:]}")
    check(f"supervisor: {BUSYBOX} runs as pid" in process.stderr() and
          f"mtls outbound to 127.0.0.1:{port}" in process.stderr(),
          f"the static command was not supervised:\n{process.stderr()[-2000:]}")
    wait_for(lambda: f"mtls inbound from 127.0.0.1" in server.stderr(), 10,
             "the server's mtls inbound line")
    print("a static command under the entrypoint: meshed by the supervisor, body fetched")

    refused, status = run_entrypoint(mesh, "entrypoint-setuid",
                                     ["/usr/bin/passwd", "--help"], env)
    check(status == 126 and "meshtls: not starting /usr/bin/passwd: " in refused.stderr() and
          refused.stdout() == b"",
          f"a set-user-ID command was not refused ({status}):\n{refused.stderr()}")
    allowed, status = run_entrypoint(mesh, "entrypoint-setuid-allowed",
                                     ["/usr/bin/passwd", "--help"],
                                     dict(env, MESHTLS_ALLOW_PLAINTEXT="1"))
    check(status == 0 and "with --allow-plaintext: its connections are NOT protected" in
          allowed.stderr(), f"MESHTLS_ALLOW_PLAINTEXT=1 ({status}):\n{allowed.stderr()}")
    print("a set-user-ID command: refused (126), started with MESHTLS_ALLOW_PLAINTEXT=1")


def test():
    check(os.access(ENTRYPOINT, os.X_OK), f"{ENTRYPOINT} is not executable")
    syntax = subprocess.run(["bash", "-n", ENTRYPOINT], capture_output=True, text=True)
    check(syntax.returncode == 0, f"entrypoint.sh: {syntax.stderr}")
    with Mesh("packaging-entrypoint") as mesh:
        mesh.start_agent()
        test_waits_then_execs(mesh)
        test_no_socket(mesh)
        test_bad_settings(mesh)
        test_no_preload_can_enter(mesh)


if __name__ == "__main__":
    main(test)
