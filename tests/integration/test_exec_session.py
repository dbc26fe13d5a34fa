"""A started mTLS session never reaches another program in clear.

A meshed server reads one line through TLS (its session has started), then hands the connection
to a new program that writes a marker to it, in each of the ways real servers start one: fork +
dup2 onto stdout + exec (inetd-style handlers), Python's subprocess with stdout= the connection
(a vfork child), os.system writing to the inherited fd, and os.posix_spawn with a dup2 file
action. And a meshed bash client whose connection (/dev/tcp) is the stdout of a `cat` it runs (the
shell forks, dup2s the connection onto stdout and execs cat).
A recording relay between client and server checks the wire: every byte is a TLS record, the
marker never appears in clear. Where a hook sees the start (fork + exec, vfork + exec, posix_spawn,
bash running cat) the session follows the connection into the new program, which writes through
TLS; os.system's child runs no hook, so the new program finds the fd closed and the peer never
receives the marker. os.get_inheritable still reads back what the program set. posix_spawn file
actions prepared before the session started hand it over too.
With -Dwolfssl=system (no session export) each of those starts resets the connection instead,
logged with the program's name and why, and the new program's bytes never reach the peer.
"""

import os
import re

from harness import (BUILD, NO_EXPORT_REASON, PYTHON, SESSION_EXPORT, Mesh, Relay, check,
                     complete_records_prefix, free_port, main, tls_records, wait_for)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fdpeers.py")
SPAWN_LATE = os.path.join(BUILD, "tests", "integration", "spawn_late")
TD = "meshtls.local"


def write_config(mesh, sock):
    path = os.path.join(mesh.dir, "mesh.conf")
    with open(path, "w") as f:
        f.write(f'agent_socket = "{sock}";\nlog_level = "info";\n'
                f'outbound = {{ loopback = "mtls"; }};\ninbound = {{ loopback = "strict"; }};\n')
    return path


def check_wire(relay, marker, what):
    """Every connection the relay carried: TLS records only (the stream may end inside none),
    TLS 1.3 application data after the hellos, and never the marker."""
    check(relay.client_bytes, f"{what}: the relay carried no connection")
    for up, down in zip(relay.client_bytes, relay.server_bytes):
        for direction, data in (("client to server", bytes(up)), ("server to client", bytes(down))):
            check(marker.encode() not in data,
                  f"{what}: the marker went {direction} in clear: {data[-200:]!r}")
            whole = complete_records_prefix(data)
            check(len(whole) == len(data),
                  f"{what}: {len(data) - len(whole)} bytes {direction} after the last whole TLS "
                  f"record: {data[len(whole):][:120]!r}")
            records = tls_records(whole)
            check(all(kind in (20, 22, 23) for kind, _, _ in records[1:]) or
                  any(kind == 21 for kind, _, _ in records),
                  f"{what}: unexpected cleartext records {direction}")


def server_hands_over(mesh, config, how, expected_log):
    marker = f"HANDLER-{how.upper()}-IN-CLEAR-5d1c"
    port = free_port()
    server = mesh.meshed(f"server-{how}", [PYTHON, PEERS, "handler-server", str(port), how,
                                           marker], config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             f"the {how} server to listen")
    check(server.popen.poll() is None, f"the {how} server exited:\n{server.stderr()}")
    relay = Relay(port)
    client = mesh.meshed(f"client-{how}", [PYTHON, PEERS, "line-client", str(relay.port),
                                           "request"], config=config)
    client.wait(30)
    wait_for(lambda: f"handed over ({how})".encode() in server.stdout(), 20,
             f"the {how} server to hand the connection over")
    relay.stop()
    started = how in ("exec", "subprocess", "posix-spawn")
    follows = how.removeprefix("fresh-") in ("exec", "subprocess", "posix-spawn")
    if started and not SESSION_EXPORT:
        follows = False
        expected_log = f"reset at {'posix_spawn' if how == 'posix-spawn' else 'exec'} of "
        wait_for(lambda: NO_EXPORT_REASON in server.stderr(), 10, f"the {how} server's reset")
    if follows:
        # A start the preload follows carries the session (test_exec_handover.py): the handler's
        # bytes reach the client through TLS.
        check(marker.encode() in client.stdout(),
              f"{how}: the client did not receive the handler's bytes: {client.stdout()!r}")
    else:
        check(marker.encode() not in client.stdout(),
              f"{how}: the client received the handler's bytes: {client.stdout()!r}")
    check_wire(relay, marker, how)
    if expected_log:
        wait_for(lambda: expected_log in server.stderr(), 10, f"the {how} server's log line")
    if how == "system":
        check(b"inheritable True" in server.stdout(),
              f"os.get_inheritable did not read back True: {server.stdout()!r}")
    outcome = ("the session followed" if follows else
               "the connection was reset at the start" if started else
               "the handler found the fd closed")
    print(f"{how}: {outcome}; nothing in clear on the wire")
    return server


def bash_client(mesh, config):
    marker = "BASH-CAT-IN-CLEAR-77e0"
    secret = os.path.join(mesh.dir, "secret.txt")
    with open(secret, "w") as f:
        f.write(marker + "\n")
    port = free_port()
    server = mesh.meshed("line-server", [PYTHON, PEERS, "fork-server", str(port)], config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the line server to listen")
    relay = Relay(port)
    # Only programs write to the connection: bash's own builtins write through stdio, which no
    # preload can reach (README "Interposed entry points").
    script = (f"exec 3<>/dev/tcp/127.0.0.1/{relay.port}; cat {secret} >&3; echo cat-exit=$?; "
              f"exec 3>&-")
    client = mesh.meshed("bash", ["/bin/bash", "-c", script], config=config)
    client.wait(30)
    relay.stop()
    out = client.stdout().decode(errors="replace")
    check("mtls outbound to" in client.stderr(),
          f"bash's connection was not mTLS:\n{client.stderr()[-2000:]}")
    check_wire(relay, marker, "bash + cat")
    if not SESSION_EXPORT:
        check("cat-exit=0" not in out, f"cat wrote to a connection it cannot carry: {out!r}")
        wait_for(lambda: "reset at exec of /usr/bin/cat" in client.stderr() and
                 NO_EXPORT_REASON in client.stderr(), 10, "bash's log line for the reset")
        print("bash: the connection was reset at cat's exec; nothing in clear on the wire")
        return
    check("cat-exit=0" in out, f"cat could not write to the connection: {out!r}")
    wait_for(lambda: "session continued after exec" in client.stderr(), 10,
             "cat's log line for the session it continued")
    print("bash: cat wrote through the session it continued; nothing in clear on the wire")


def passed_to_another_process(mesh, config, when):
    """A meshed server passes the connection to a child process over a Unix socket (SCM_RIGHTS),
    before its first read ("fresh") or after ("started"): refused with EPERM and logged, and
    nothing the child would write reaches the wire."""
    marker = f"PASSED-{when.upper()}-IN-CLEAR-91b4"
    port = free_port()
    server = mesh.meshed(f"pass-{when}", [PYTHON, PEERS, "pass-server", str(port), when, marker],
                         config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             f"the {when} pass server to listen")
    relay = Relay(port)
    client = mesh.meshed(f"pass-client-{when}", [PYTHON, PEERS, "line-client", str(relay.port),
                                                 "request"], config=config)
    client.wait(30)
    wait_for(lambda: b"passed" in server.stdout() or b"refused" in server.stdout(), 20,
             f"the {when} pass server to try")
    relay.stop()
    check(b"refused EPERM" in server.stdout(),
          f"{when}: passing the connection was not refused: {server.stdout()!r}")
    check(marker.encode() not in client.stdout(), f"{when}: the client got {client.stdout()!r}")
    check_wire(relay, marker, f"SCM_RIGHTS ({when})")
    wait_for(lambda: "(SCM_RIGHTS): it is an mTLS connection, which only this process can carry"
             in server.stderr(), 10, f"the {when} pass server's log line")
    print(f"SCM_RIGHTS ({when}): refused with EPERM; nothing in clear on the wire")


def spawn_prepared_early(mesh, config, when):
    """posix_spawn file actions set up while the connection is still connecting, or before the
    socket is connected at all (when="before-connect"; the dup2 is glibc's own, in the child):
    what counts is the connection at the spawn, whose session is handed over to the new program
    (a shell echoing the marker) on the action's target fd."""
    marker = "SPAWNED-LATE-IN-CLEAR-c2a8"
    port = free_port()
    server = mesh.meshed("late-server", [PYTHON, PEERS, "fork-server", str(port)], config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "the line server to listen")
    relay = Relay(port)
    client = mesh.meshed(f"spawn-late-{when}",
                         [SPAWN_LATE, str(relay.port), marker] + ([when] if when else []),
                         config=config)
    client.wait(30)
    relay.stop()
    check(b"spawned" in client.stdout(),
          f"the late posix_spawn failed: {client.stdout()!r}\n{client.stderr()[-2000:]}")
    check_wire(relay, marker, "posix_spawn prepared early")
    if not SESSION_EXPORT:
        check("reset at posix_spawn of /bin/sh" in client.stderr() and
              NO_EXPORT_REASON in client.stderr(),
              f"the spawn did not reset the connection:\n{client.stderr()[-2000:]}")
        print(f"posix_spawn prepared {when or 'while connecting'}: the connection was reset at "
              "the spawn")
        return
    check(re.search(r"mtls outbound to 127\.0\.0\.1:\d+ on fd \d+: session continued after exec "
                    r"in /bin/sh", client.stderr()),
          f"the spawned shell did not continue the session:\n{client.stderr()[-2000:]}")
    print(f"posix_spawn prepared {when or 'while connecting'}: the session followed into the "
          "spawned program")


def test():
    with Mesh("exec-session") as mesh:
        sock = mesh.start_agent()
        config = write_config(mesh, sock)
        server_hands_over(mesh, config, "exec", "session continued after exec")
        server_hands_over(mesh, config, "subprocess", "session continued after exec")
        server_hands_over(mesh, config, "system", None)
        server_hands_over(mesh, config, "posix-spawn", "session continued after exec")
        # Before the handshake (inetd's accept and exec): the handler makes the handshake.
        for how in ("fresh-exec", "fresh-subprocess", "fresh-posix-spawn"):
            server_hands_over(mesh, config, how, None)
        bash_client(mesh, config)
        passed_to_another_process(mesh, config, "fresh")
        passed_to_another_process(mesh, config, "started")
        passed_to_another_process(mesh, config, "tight")
        passed_to_another_process(mesh, config, "mmsg")
        spawn_prepared_early(mesh, config, None)
        spawn_prepared_early(mesh, config, "before-connect")


if __name__ == "__main__":
    main(test)
