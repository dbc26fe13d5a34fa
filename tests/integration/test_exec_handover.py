"""An established mTLS session follows its connection into an exec'd program.

inetd: a meshed C server (inetd_exec) reads a request line through TLS, then forks and execs its
handler with the connection on stdin and stdout; the handler (meshed by the same preload) writes
the reply and reads one more line. The session crosses exec in a sealed memfd: the meshed client
gets both replies, the wire carries TLS records only (none of the text in clear), and the handler
logs that it continued the session. A plaintext client is refused. The same when inetd_exec
starts its handler with posix_spawn and dup2 file actions instead of fork and exec.

CGI: Python's http.server --cgi (unmodified) reads the request through TLS, writes the status
line, forks and execs a CGI shell script with the socket on stdin and stdout; the parent closes
its copy afterwards. A meshed curl (fetch.py in the sanitized build) gets the script's body.

With -Dwolfssl=system (no session export) the session cannot follow: each exec resets the
connection, logged with the handler's name and why; the client gets no reply and the wire no
byte in clear.
"""

import os

from harness import (BUILD, MESHTLS, NO_EXPORT_REASON, SESSION_EXPORT, Mesh, PYTHON, Relay,
                     assert_plaintext_refused, check, for_other_users, free_port, http_client,
                     main, wait_for)
from test_exec_session import check_wire, write_config

INETD = os.path.join(BUILD, "tests", "integration", "inetd_exec")

CLIENT = """
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as connection:
    reader = connection.makefile("rb")
    connection.sendall(b"request-7f3a\\n")
    print(reader.readline().decode().strip(), flush=True)
    connection.sendall(b"more-c41d\\n")
    print(reader.readline().decode().strip(), flush=True)
    print("end", repr(reader.read()), flush=True)
"""


def inetd(mesh, config, how="serve"):
    port = free_port()
    server = mesh.meshed(f"inetd-{how}", [INETD, how, str(port), "2"], config=config)
    wait_for(lambda: b"listening" in server.stdout() or server.popen.poll() is not None, 20,
             "inetd_exec to listen")
    check(server.popen.poll() is None, f"inetd_exec exited:\n{server.stderr()}")
    relay = Relay(port)
    client = mesh.meshed("client", [PYTHON, "-c", CLIENT, str(relay.port)], config=config)
    client.wait(30)
    out = client.stdout().decode(errors="replace")
    if not SESSION_EXPORT:
        reset = f"reset at {'posix_spawn' if how == 'spawn' else 'exec'} of {INETD}"
        wait_for(lambda: reset in server.stderr() and NO_EXPORT_REASON in server.stderr(), 10,
                 "inetd_exec to log the reset")
        check("handler got" not in out, f"the client got a reply after the reset: {out!r}")
        relay.stop()
        for text in ("request-7f3a", "handler got"):
            check_wire(relay, text, "inetd reset")
        assert_plaintext_refused(port, server, b"plaintext-request\n", "peer did not speak TLS")
        print(f"inetd ({how}): reset at the handler's start (no session export); plaintext "
              "refused")
        return
    check("handler got request-7f3a" in out and "handler read more-c41d" in out and
          "end b''" in out,
          f"the client did not get both replies and a clean end: {out!r}\n"
          f"client:\n{client.stderr()[-2000:]}\nserver:\n{server.stderr()[-3000:]}")
    relay.stop()
    for text in ("request-7f3a", "more-c41d", "handler got", "handler read"):
        check_wire(relay, text, "inetd hand-over")
    wait_for(lambda: b"handler exited 0" in server.stdout(), 10, "the handler to exit")
    check("session continued after exec" in server.stderr(),
          f"the handler did not log the session it continued:\n{server.stderr()[-2000:]}")
    # The handler names the key exchange of the handshake it did not see, as the server did.
    first = [line for line in server.stderr().splitlines() if "mtls inbound from" in line
             and "continued" not in line][0]
    continued = [line for line in server.stderr().splitlines() if "continued after exec" in line][0]
    check(continued.split()[-1] == first.split()[-1] != "?",
          f"the key exchange is not carried across exec:\n{first}\n{continued}")
    check("reset" not in server.stderr(), f"a session was reset:\n{server.stderr()[-2000:]}")
    # Plaintext to a strict port: refused, the handler never runs for it.
    assert_plaintext_refused(port, server, b"plaintext-request\n", "peer did not speak TLS")
    print(f"inetd ({how}): the session followed the connection into the handler; plaintext "
          "refused")


def cgi(mesh, config):
    # Running as root, http.server runs its scripts as nobody: they must reach the script, the
    # agent's socket and the configuration.
    os.chmod(mesh.dir, 0o755)
    root = os.path.join(mesh.dir, "www")
    os.makedirs(os.path.join(root, "cgi-bin"))
    script = os.path.join(root, "cgi-bin", "hello.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n"
                "echo \"cgi body 9b2e for $QUERY_STRING\"\n")
    os.chmod(script, 0o755)
    os.chmod(config, 0o644)
    port = free_port()
    # The scripts run as nobody: libmeshtls from where every uid can read it.
    meshtls = for_other_users(MESHTLS, os.path.join(BUILD, "libmeshtls-preload.so"))[0]
    server = mesh.meshed("http.server", [PYTHON, "-u", "-m", "http.server", "--cgi", "--bind",
                                         "127.0.0.1", "--directory", root, str(port)],
                         config=config, meshtls=meshtls)
    wait_for(lambda: b"Serving HTTP" in server.stdout() or server.popen.poll() is not None, 20,
             "http.server to listen")
    check(server.popen.poll() is None, f"http.server exited:\n{server.stderr()}")
    relay = Relay(port)
    curl = mesh.meshed("curl", http_client(f"http://127.0.0.1:{relay.port}/cgi-bin/hello.sh?x=1"),
                       config=config)
    curl.wait(30)
    relay.stop()
    body = curl.stdout().decode(errors="replace")
    if not SESSION_EXPORT:
        check("cgi body 9b2e" not in body, f"curl got the body after the reset: {body!r}")
        check_wire(relay, "cgi body 9b2e", "CGI reset")
        wait_for(lambda: f"reset at exec of {script}" in server.stderr() and
                 NO_EXPORT_REASON in server.stderr(), 10, "http.server to log the reset")
        print("CGI: reset at the script's exec (no session export)")
        return
    check("cgi body 9b2e for x=1" in body,
          f"curl did not get the CGI body: {body!r}\ncurl:\n{curl.stderr()[-2000:]}\n"
          f"server:\n{server.stderr()[-3000:]}")
    check(curl.popen.returncode == 0, f"curl failed: {curl.stderr()[-2000:]}")
    check_wire(relay, "cgi body 9b2e", "CGI")
    check("session continued after exec" in server.stderr(),
          f"the CGI script did not continue the session:\n{server.stderr()[-2000:]}")
    print("CGI: http.server's script answered through the handed-over session")


def test():
    with Mesh("exec-handover") as mesh:
        config = write_config(mesh, mesh.start_agent())
        inetd(mesh, config)
        inetd(mesh, config, "spawn")
        cgi(mesh, config)


if __name__ == "__main__":
    main(test)
