"""Shared by the supervisor's tests: running a program under `meshtls supervise`, and what its
log lines say."""

import os
import re
import shutil
import socket
import subprocess

from harness import MESHTLS, check, wait_for

SOURCES = os.environ.get("MESHTLS_TEST_SOURCE_DIR", os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.environ.get("MESHTLS_TEST_PROGRAMS_DIR", "")


def build(argv, what, env=None):
    """Runs a compiler; fails the test with its output when it fails."""
    os.makedirs(PROGRAMS, exist_ok=True)
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    check(result.returncode == 0, f"building {what} failed ({' '.join(argv)}):\n"
          f"{result.stdout}{result.stderr}")


def build_static_peer():
    """static_peer.c linked statically with gcc (libc6-dev's libc.a)."""
    check(PROGRAMS != "", "MESHTLS_TEST_PROGRAMS_DIR is not set (run the test through meson)")
    output = os.path.join(PROGRAMS, "static_peer")
    build(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror", "-static", "-o", output,
           os.path.join(SOURCES, "static_peer.c")], "the static test program")
    return output


def build_go_program():
    """supervised_http.go built by Debian's Go (golang-go), with no module download: one file,
    the standard library only, its cache inside the build directory."""
    check(PROGRAMS != "", "MESHTLS_TEST_PROGRAMS_DIR is not set (run the test through meson)")
    check(shutil.which("go") is not None,
          "go not found: packaging/install-deps.sh installs golang-go for this test")
    output = os.path.join(PROGRAMS, "supervised_http")
    env = dict(os.environ, GOCACHE=os.path.join(PROGRAMS, "go-cache"),
               GOPATH=os.path.join(PROGRAMS, "go-path"), GOPROXY="off", GOFLAGS="-mod=mod",
               GO111MODULE="off", CGO_ENABLED="0", HOME=PROGRAMS)
    env.pop("LD_PRELOAD", None)
    build(["go", "build", "-o", output, os.path.join(SOURCES, "supervised_http.go")],
          "the Go test program", env=env)
    return output


def supervised(mesh, name, argv, agent="agent"):
    """Runs argv (a static or Go program) under `meshtls run` with agent's configuration: such a
    program goes to the supervisor."""
    return mesh.spawn(name, [MESHTLS, "run", "--config", mesh.configs[agent], "--"] + argv)


def identity_rules(programs):
    """Agent rules giving each (path, id) its own SPIFFE ID, and the supervisor (the meshtls
    binary) another: a supervised program's connections must carry the program's."""
    rules = [f'{{ exe = "{path}"; id = "{spiffe_path}"; }}' for path, spiffe_path in programs]
    rules.append(f'{{ exe = "{MESHTLS}"; id = "test/supervisor-itself"; }}')
    return "rules = ( " + ",\n          ".join(rules) + " );\n"


def program_pid(process):
    """The supervised program's pid, from the supervisor's first line."""
    wait_for(lambda: re.search(r"runs as pid (\d+)", process.stderr()) is not None, 20,
             f"{process.name}'s supervisor to start the program")
    return int(re.search(r"runs as pid (\d+)", process.stderr()).group(1))


def wait_output(process, text, timeout=20):
    wait_for(lambda: text.encode() in process.stdout() or process.popen.poll() is not None,
             timeout, f"{process.name} to print {text!r}")
    check(text.encode() in process.stdout(),
          f"{process.name} exited ({process.popen.returncode}) without {text!r}:\n"
          f"{process.stdout().decode(errors='replace')}\n{process.stderr()[-3000:]}")


def peer_id_logged(process, direction):
    """The SPIFFE ID the engine logged for the supervisor's mtls connection (outbound or
    inbound), or None."""
    found = re.search(rf"mtls {direction} .*?: peer (spiffe://[^,\s]+)", process.stderr())
    return found.group(1) if found else None


def process_gone(pid):
    """True once pid no longer runs (gone, or a zombie nobody reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def nothing_accepted(listener, what):
    """Fails when a connection reaches listener (a socket with a timeout) within its timeout."""
    try:
        connection, _ = listener.accept()
    except socket.timeout:
        return
    connection.close()
    check(False, f"{what} reached the listener")
