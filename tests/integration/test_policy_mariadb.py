"""Server-speaks-first under strict mesh-to-mesh with the REAL MariaDB server and client.

MySQL's protocol starts with the server's greeting, so the server can never wait for the client's
first bytes. A fresh datadir (mariadb-install-db) is served by an unmodified `mariadbd` under
`meshtls run`, on a port whose inbound rule is strict, opaque (server speaks first) and allows only
the client's identity; the unmodified `mariadb` client, under `meshtls run` with an outbound rule
expecting the server's identity (spiffe://meshtls.local/ns/db/*), runs `SELECT 40+2` over TCP and
prints 42. Identities come from the agent's rules by executable (/usr/sbin/mariadbd,
/usr/bin/mariadb). Through a recording relay the query runs again and the wire carries only
TLS 1.3: neither the greeting (server version, auth plugin name) nor the query appears in clear.
A plaintext mariadb client (not meshed) to the same port gets no greeting: the server side waits
for a ClientHello that never comes and refuses the connection when the handshake timeout ends,
with the log line naming peer, port, mode and reason.

Sanitized build: the server and client run with libasan preloaded before libmeshtls (this works
on Debian 12); if that ever stops working, the test checks libasan alone and skips (77) only when
libasan by itself breaks mariadbd, printing why.
"""

import os
import shutil
import subprocess

from harness import (ASAN_RUNTIME, MESHTLS, SYSTEM_WOLFSSL, Mesh, Relay, assert_relay_tls13,
                     base_env, check, free_port, main, port_listening, skip, wait_for)
from policy_common import run, spiffe, wait_log, write_workload_config

MARIADBD = "/usr/sbin/mariadbd"
CLIENT = "/usr/bin/mariadb"
HANDSHAKE_TIMEOUT_MS = 3000


def install_datadir(mesh):
    datadir = os.path.join(mesh.dir, "datadir")
    installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    check(installer is not None, "mariadb-install-db is missing (packaging/install-deps.sh)")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    result = subprocess.run([installer, "--no-defaults", f"--datadir={datadir}", "--user=root",
                             "--auth-root-authentication-method=normal", "--skip-test-db"],
                            capture_output=True, text=True, timeout=120, env=env, cwd=mesh.dir)
    check(result.returncode == 0, f"{installer} failed:\n{result.stdout}\n{result.stderr}")
    return datadir


def server_argv(mesh, datadir, port, name):
    return [MARIADBD, "--no-defaults", f"--datadir={datadir}",
            f"--socket={os.path.join(mesh.dir, name + '.sock')}",
            f"--pid-file={os.path.join(mesh.dir, name + '.pid')}", f"--port={port}",
            "--bind-address=127.0.0.1", "--user=root", "--skip-grant-tables",
            "--skip-name-resolve", "--innodb-buffer-pool-size=16M"]


def client_argv(port, query):
    return [CLIENT, "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(port),
            "-u", "root", "--connect-timeout=20", "--batch", "--skip-column-names", "-e", query]


def sanitized_precheck(mesh, datadir):
    """Under ASan: can mariadbd run with only libasan preloaded? If not, skip with the reason."""
    port = free_port()
    process = mesh.spawn("mariadbd-asan-only", server_argv(mesh, datadir, port, "asan-only"),
                         env=base_env())
    try:
        wait_for(lambda: port_listening(port) or process.popen.poll() is not None, 60,
                 "mariadbd with libasan alone to listen")
    except Exception:
        pass
    works = process.popen.poll() is None and port_listening(port)
    log = process.stderr()
    process.stop()
    if not works:
        skip(f"mariadbd does not run with only {ASAN_RUNTIME} preloaded (no libmeshtls):\n"
             f"{log[-2000:]}")
    # mariadbd's own shutdown must be complete before the datadir is reused.
    wait_for(lambda: process.popen.poll() is not None, 30, "mariadbd (asan only) to exit")


def test():
    for program in (MARIADBD, CLIENT):
        check(os.access(program, os.X_OK),
              f"{program} is missing: install mariadb-server mariadb-client "
              "(packaging/install-deps.sh)")
    if SYSTEM_WOLFSSL:
        # Measured: libwolfssl.so.35's TLS segment is 0xc2c8 bytes (readelf -l); the server
        # speaks first, which test_policy_permissive.py checks with other programs.
        skip("-Dwolfssl=system: Debian's libwolfssl adds 49 KB of thread-local storage to every "
             "thread; mariadbd's small-stack timer thread then cannot start (\"Can't initialize "
             "timers\")")
    with Mesh("policy-mariadb") as mesh:
        mesh.start_agent(config=(
            'rules = (\n'
            f'  {{ exe = "{MARIADBD}"; id = "ns/db/sa/mariadb"; }},\n'
            f'  {{ exe = "{CLIENT}"; id = "ns/app/sa/mariadb-client"; }}\n'
            ');\n'))
        server_id, client_id = spiffe("ns/db/sa/mariadb"), spiffe("ns/app/sa/mariadb-client")
        datadir = install_datadir(mesh)
        port = free_port()
        relay = Relay(port)
        config = write_workload_config(mesh, "workload", f"""
handshake_timeout_ms = {HANDSHAKE_TIMEOUT_MS};
outbound = {{
    loopback = "plain";
    rules = (
        {{ to = "127.0.0.1"; ports = [{port}, {relay.port}]; mode = "mtls";
           identity = "spiffe://meshtls.local/ns/db/*"; }}
    );
}};
inbound = {{
    loopback = "plain";
    rules = (
        {{ port = {port}; mode = "strict"; opaque = true;
           allow = ["{client_id}"]; }}
    );
}};
""")
        # mariadbd links liburing for InnoDB's file I/O; its sockets go through the preload (the
        # relay below sees only TLS 1.3), so it is started with --allow-io-uring.
        server = mesh.spawn("mariadbd", [MESHTLS, "run", "--allow-io-uring", "--config", config,
                                         "--"] + server_argv(mesh, datadir, port, "meshed"))
        try:
            wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 60,
                     "mariadbd to listen")
        except Exception:
            pass
        if ASAN_RUNTIME and not port_listening(port):
            log = server.stderr()
            server.stop()
            sanitized_precheck(mesh, datadir)
            check(False, f"mariadbd runs with libasan alone but not under meshtls run:\n{log}")
        check(server.popen.poll() is None and port_listening(port),
              f"mariadbd did not start under meshtls run:\n{server.stderr()[-4000:]}")

        # Mesh to mesh, directly: the query runs and both sides name each other.
        status, out, err = run(mesh, "mariadb", client_argv(port, "SELECT 40+2"), config=config,
                               timeout=40)
        check(status == 0 and out.strip() == "42",
              f"mariadb client: status {status}, output {out!r}:\n{err}")
        check(f"mtls outbound to 127.0.0.1:{port}: peer {server_id}, TLSv1.3" in err,
              f"the client's log does not name the server:\n{err}")
        wait_log(server, rf"mtls inbound from 127\.0\.0\.1:\d+ on :{port}: peer {client_id}, "
                         r"TLSv1\.3")

        # Through the recording relay: TLS 1.3 only, the greeting and the query never in clear.
        status, out, err = run(mesh, "mariadb-relay",
                               client_argv(relay.port, "SELECT CONCAT('mesh', 'tls', 40+2)"),
                               config=config, timeout=40)
        check(status == 0 and out.strip() == "meshtls42",
              f"mariadb through the relay: status {status}, output {out!r}:\n{err}")
        connections = assert_relay_tls13(
            relay, [b"mysql_native_password", b"MariaDB", b"SELECT", b"CONCAT", b"meshtls42"],
            expected_connections=1)

        # A plaintext client waits for a greeting that the mesh never sends in clear.
        status, out, err = run(mesh, "mariadb-plain", client_argv(port, "SELECT 40+2"),
                               meshed=False, timeout=40)
        check(status != 0 and "42" not in out,
              f"a plaintext mariadb client got an answer from a strict port:\n{out}")
        wait_log(server, rf"warn: refused inbound connection from 127\.0\.0\.1:\d+ on :{port} "
                         rf"\(mode strict\): TLS handshake timed out after "
                         rf"{HANDSHAKE_TIMEOUT_MS} ms",
                 timeout=HANDSHAKE_TIMEOUT_MS / 1000 + 10)

        # And the server still serves meshed clients.
        status, out, err = run(mesh, "mariadb-again", client_argv(port, "SELECT 6*7"),
                               config=config, timeout=40)
        check(status == 0 and out.strip() == "42", f"mariadb after the refusal ({status}):\n{err}")
        check(server.popen.poll() is None, "mariadbd died")
        print(f"mariadb: SELECT 40+2 = 42 mesh to mesh (strict, opaque, allow list, expected "
              f"server identity); {connections} relayed connection TLS 1.3 only; plaintext "
              f"client refused")


if __name__ == "__main__":
    main(test)
