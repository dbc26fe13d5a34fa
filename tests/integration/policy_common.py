"""Shared pieces of the policy tests (test_policy_*.py): full workload configs with rules, copies of
the Python interpreter that the agent attests as distinct executables (so they get distinct
identities), the peers in policy_peers.py, and log-line lookups."""

import os
import re
import shutil
import socket
import subprocess

from harness import (PYTHON, TestFailure, check, port_listening, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "policy_peers.py")
TRUST_DOMAIN = "meshtls.local"


def spiffe(path):
    return f"spiffe://{TRUST_DOMAIN}/{path}"


def write_workload_config(mesh, name, body, agent="agent", log_level="info"):
    """A complete workload config (agent socket, log level, then body: outbound/inbound/...)."""
    path = os.path.join(mesh.dir, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f'agent_socket = "{mesh.agents[agent]}";\n'
                f'log_level = "{log_level}";\n' + body)
    return path


def copy_python(mesh, name):
    """A copy of the interpreter at <mesh>/bin/<name>: another executable path, so another
    identity under exe rules, and otherwise the same Python."""
    directory = os.path.join(mesh.dir, "bin")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    shutil.copy2(os.path.realpath(PYTHON), path)
    return path


def peer(python, *arguments):
    return [python, PEERS] + [str(a) for a in arguments]


def start_server(mesh, name, argv, ports, config=None, meshed=True,
                 family=socket.AF_INET, timeout=20):
    """Starts argv (meshed with config, or not), waits until every port listens."""
    process = mesh.meshed(name, argv, config=config) if meshed else mesh.spawn(name, argv)
    wait_for(lambda: all(port_listening(p, family) for p in ports) or
             process.popen.poll() is not None, timeout, f"{name} to listen on {ports}")
    check(process.popen.poll() is None,
          f"{name} exited with {process.popen.returncode}:\n{process.stderr()[-4000:]}")
    return process


def run(mesh, name, argv, config=None, meshed=True, timeout=30):
    """Runs a client to completion: (status, stdout text, stderr text)."""
    process = mesh.meshed(name, argv, config=config) if meshed else mesh.spawn(name, argv)
    status = process.wait(timeout)
    return status, process.stdout().decode(errors="replace"), process.stderr()


def wait_log(process, pattern, timeout=10, what=None):
    """Waits until process's stderr has a line matching the regular expression; returns it."""
    found = []

    def present():
        for line in process.stderr().splitlines():
            if re.search(pattern, line):
                found.append(line)
                return True
        return False
    try:
        wait_for(present, timeout, what or f"a log line matching {pattern!r}")
    except TestFailure:
        raise TestFailure(f"{process.name}: no log line matching {pattern!r} within {timeout}s; "
                          f"log:\n{process.stderr()[-4000:]}")
    return found[0]


def self_signed_certificate(directory, name="app"):
    """A self-signed certificate and key made with the openssl CLI (the application's own TLS)."""
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                    "-keyout", key, "-out", cert], check=True, capture_output=True, timeout=30)
    return cert, key


def is_tls_client_hello(data, offering_alpn=None):
    """True when data starts with a TLS handshake record holding a ClientHello; with
    offering_alpn, also whether the bytes of that ALPN protocol name appear in it."""
    if len(data) < 6 or data[0] != 22 or data[1] != 3 or data[5] != 1:
        return False
    return offering_alpn is None or offering_alpn in bytes(data[:4096])
