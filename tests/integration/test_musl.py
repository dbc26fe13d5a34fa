"""musl programs meshed by libmeshtls-preload-musl.so, talking to glibc programs meshed by
libmeshtls-preload.so, in both directions, with blocking and poll()-driven sockets.

One small client/server (libc_peer.c) is built at test time twice: with musl-gcc (its loader is
/lib/ld-musl-x86_64.so.1) and with cc (glibc). The musl build runs with LD_PRELOAD=the musl
variant, which `meshtls run` picks by the program's interpreter, the glibc build with the glibc
preload, both under `meshtls run`. Through a recording relay:
each answer carries the client's token back, the wire is TLS 1.3 records with no token in
clear, and each side logs the other's SPIFFE ID (the agent tells the two executables apart).
A plaintext client is refused by the meshed musl server, which goes on serving. A meshed musl
program that execs the glibc client (and the reverse) hands it the glibc build of the preload
(the musl one), which the client needs to be meshed at all. The container entrypoint
(packaging/docker/entrypoint.sh), told of the glibc build, starts the musl client with the musl
build. An established session follows its connection from a musl inetd-style server into the
musl handler it execs or spawns (inetd_exec.c, built by musl-gcc too).
"""

import os
import shutil
import subprocess

from harness import (ASAN_RUNTIME, BUILD, PYTHON, SESSION_EXPORT, Mesh, Relay,
                     assert_plaintext_refused,
                     assert_tls13_wire, base_env, check, free_port, main, port_listening,
                     random_token, skip, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
MUSL_PRELOAD = os.path.join(BUILD, "libmeshtls-preload-musl.so")
GLIBC_PRELOAD = os.path.join(BUILD, "libmeshtls-preload.so")
ENTRYPOINT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "packaging", "docker",
                          "entrypoint.sh")
MUSL_ID = "spiffe://meshtls.local/test/musl"
GLIBC_ID = "spiffe://meshtls.local/test/glibc"


def build(compiler, source, output):
    result = subprocess.run([compiler, "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Werror",
                             "-I", HERE, "-o", output, os.path.join(HERE, source)],
                            capture_output=True, text=True)
    check(result.returncode == 0, f"{compiler} {source} failed:\n{result.stderr}")
    return output


def build_peers(directory):
    """libc_peer.c built by musl-gcc and by cc; their paths."""
    built = [build(compiler, "libc_peer.c", os.path.join(directory, name))
             for compiler, name in (("musl-gcc", "peer-musl"), ("cc", "peer-glibc"))]
    interpreter = subprocess.run(["readelf", "-l", built[0]], capture_output=True,
                                 text=True).stdout
    check("ld-musl" in interpreter, f"{built[0]} is not a musl program:\n{interpreter}")
    return built


def musl_meshed(mesh, name, argv):
    """argv (a musl program) under `meshtls run`, which gives it the musl variant alone (a
    sanitizer runtime in LD_PRELOAD is glibc's: the musl loader could not load it)."""
    return mesh.meshed(name, argv)


def start_server(mesh, name, process_for, argv, port):
    server = process_for(mesh, name, argv)
    wait_for(lambda: port_listening(port) or server.popen.poll() is not None, 20,
             f"{name} to listen on {port}")
    check(server.popen.poll() is None,
          f"{name} exited with {server.popen.returncode}:\n{server.stderr()[-4000:]}")
    return server


def glibc_meshed(mesh, name, argv):
    return mesh.meshed(name, argv)


def entrypoint_meshed(mesh, name, argv):
    """argv under the container entrypoint, which is given the glibc build's path."""
    env = base_env()
    env.pop("LD_PRELOAD", None)
    env.update(MESHTLS_AGENT_SOCKET=mesh.agents["agent"], MESHTLS_AGENT_WAIT="5",
               MESHTLS_PRELOAD=GLIBC_PRELOAD, MESHTLS_CONFIG=mesh.configs["agent"])
    return mesh.spawn(name, [ENTRYPOINT] + argv, env=env)


def exchange(mesh, label, server_side, client_side, mode, launcher=None):
    """One conversation through a relay: server_side and client_side are (peer binary, how to
    mesh it, its SPIFFE ID); launcher, a (peer binary, how to mesh it) that execs the client."""
    (server_binary, server_mesh, server_id) = server_side
    (client_binary, client_mesh, client_id) = client_side
    prefix = []
    if launcher is not None:
        prefix = [launcher[0], "run"]
        client_mesh = launcher[1]
    port = free_port()
    server = start_server(mesh, f"{label}-server", server_mesh,
                          [server_binary, "server", str(port), mode, label], port)
    relay = Relay(port)
    token = random_token()
    client = client_mesh(mesh, f"{label}-client",
                         prefix + [client_binary, "client", str(relay.port), mode, token])
    status = client.wait(30)
    relay.stop()
    check(status == 0, f"{label}: client exited {status}:\n{client.stderr()}\n"
                       f"server:\n{server.stderr()}")
    answer = client.stdout().decode(errors="replace")
    check(answer == f"served {token} by {label}\n", f"{label}: the client got {answer!r}")
    with relay.lock:
        pairs = list(zip(relay.client_bytes, relay.server_bytes))
    check(len(pairs) == 1, f"{label}: the relay carried {len(pairs)} connections")
    assert_tls13_wire(bytes(pairs[0][0]), bytes(pairs[0][1]), [token.encode(), label.encode()])
    client_log = client.stderr()
    check(f"mtls outbound to 127.0.0.1:{relay.port}: peer {server_id}, TLSv1.3" in client_log,
          f"{label}: the client's log does not name {server_id}:\n{client_log}")
    check("cannot be interposed" not in client_log and "cannot load" not in client_log,
          f"{label}: the client was warned about its preload:\n{client_log}")
    wait_for(lambda: f"on :{port}: peer {client_id}, TLSv1.3" in server.stderr(), 10,
             f"{label}: the server to log {client_id}")
    return server, port


INETD_CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as connection:
    reader = connection.makefile("rb")
    connection.sendall(b"request-5e1b\\n")
    print(reader.readline().decode().strip(), flush=True)
    connection.sendall(b"more-92c7\\n")
    print(reader.readline().decode().strip(), flush=True)
    print("end", repr(reader.read()), flush=True)
"""


def musl_handover(mesh, inetd, how):
    """A musl inetd_exec hands its established session to the musl handler it starts (how:
    serve = fork and exec, spawn = posix_spawn): the glibc client gets both replies, in TLS."""
    port = free_port()
    server = start_server(mesh, f"inetd-{how}", musl_meshed, [inetd, how, str(port), "1"], port)
    relay = Relay(port)
    client = glibc_meshed(mesh, f"inetd-{how}-client", [PYTHON, "-c", INETD_CLIENT,
                                                        str(relay.port)])
    client.wait(30)
    relay.stop()
    out = client.stdout().decode(errors="replace")
    check("handler got request-5e1b" in out and "handler read more-92c7" in out and
          "end b''" in out, f"inetd ({how}): the client got {out!r}\n{server.stderr()[-3000:]}")
    with relay.lock:
        pairs = list(zip(relay.client_bytes, relay.server_bytes))
    check(len(pairs) == 1, f"inetd ({how}): the relay carried {len(pairs)} connections")
    assert_tls13_wire(bytes(pairs[0][0]), bytes(pairs[0][1]),
                      [b"request-5e1b", b"more-92c7", b"handler got", b"handler read"])
    wait_for(lambda: "session continued after exec" in server.stderr(), 10,
             f"inetd ({how}): the musl handler to log the session it continued")
    check("reset" not in server.stderr() and "cannot be interposed" not in server.stderr(),
          f"inetd ({how}): a session was reset:\n{server.stderr()[-2000:]}")


def test():
    if shutil.which("musl-gcc") is None:
        skip("musl-gcc is not installed (Debian's musl-tools; packaging/install-deps.sh)")
    if os.environ.get("MESHTLS_TEST_MUSL") != "built":
        skip("this build has no libmeshtls-preload-musl.so (-Dmusl=disabled, or -Dwolfssl/"
             "-Dlibconfig=system)")
    check(os.path.exists(MUSL_PRELOAD), f"{MUSL_PRELOAD} is missing from the build")
    with Mesh("musl") as mesh:
        musl_peer, glibc_peer = build_peers(mesh.dir)
        mesh.start_agent(config=f'rules = ( {{ exe = "{musl_peer}"; id = "test/musl"; }},\n'
                                f'          {{ exe = "{glibc_peer}"; id = "test/glibc"; }} );\n')
        musl = (musl_peer, musl_meshed, MUSL_ID)
        glibc = (glibc_peer, glibc_meshed, GLIBC_ID)
        for mode in ("blocking", "poll"):
            server, port = exchange(mesh, f"musl-server-{mode}", musl, glibc, mode)
            if mode == "blocking":
                # The musl server refuses a plaintext client, and still serves the mesh after.
                assert_plaintext_refused(port, server, b"plaintext hello\n")
                token = random_token()
                client = glibc_meshed(mesh, "after-plaintext",
                                      [glibc_peer, "client", str(port), mode, token])
                check(client.wait(30) == 0, f"no answer after the plaintext client:\n"
                                            f"{client.stderr()}")
                check(client.stdout().decode() == f"served {token} by musl-server-{mode}\n",
                      f"after the plaintext client: {client.stdout()!r}")
            exchange(mesh, f"glibc-server-{mode}", glibc, musl, mode)
        # exec across C libraries: the launcher's preload build is the wrong one for the client.
        exchange(mesh, "exec-musl", musl, musl, "blocking", launcher=glibc)
        # Not in the sanitized build: its glibc preload needs the sanitizer runtime loaded first,
        # which the musl launcher cannot carry (musl's loader cannot load that glibc library).
        if not ASAN_RUNTIME:
            exchange(mesh, "exec-glibc", glibc, glibc, "blocking", launcher=musl)
        if SESSION_EXPORT:
            inetd = build("musl-gcc", "inetd_exec.c", os.path.join(mesh.dir, "inetd-musl"))
            for how in ("serve", "spawn"):
                musl_handover(mesh, inetd, how)
        exchange(mesh, "entrypoint-musl", glibc, (musl_peer, entrypoint_meshed, MUSL_ID), "poll")


if __name__ == "__main__":
    main(test)
