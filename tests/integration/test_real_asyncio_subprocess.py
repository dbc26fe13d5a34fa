"""A Python asyncio server (the default epoll event loop) that runs a program for its clients keeps
serving over mTLS: CPython's subprocess forks (a preexec_fn rules out vfork) and the child closes
every descriptor it inherited with one close_range before it execs, while the parent's listener,
its meshed connections and the child's pipes all wait in the same epoll instance.

A client under `meshtls run` holds two connections open (one through a recording relay) and asks
the server ROUNDS times to run /bin/echo; after each run, new meshed clients connect and are
echoed, and the two old connections still answer. The relayed connection shows only TLS 1.3
records, and a plaintext client is refused.

Modes: `test_real_asyncio_subprocess.py server PORT` and `... client PORT RELAY_PORT SECRET` are
the two programs; with no arguments it is the test."""

import asyncio
import os
import sys

from harness import (LineClient, Mesh, PYTHON, Relay, assert_plaintext_refused, assert_relay_tls13,
                     check, fail_client, free_port, main, random_token, run_meshed,
                     start_meshed_server)

ROUNDS = 3
NEW_CLIENTS = 3


async def handle(reader, writer):
    """Echoes each line; "run WORD" answers with what /bin/echo WORD printed in a subprocess."""
    try:
        while line := await reader.readline():
            if line.startswith(b"run "):
                child = await asyncio.create_subprocess_exec(
                    "/bin/echo", "ran", line[4:].strip(), stdout=asyncio.subprocess.PIPE,
                    preexec_fn=os.setpgrp)
                output, _ = await child.communicate()
                line = output if child.returncode == 0 else b"failed\n"
            writer.write(line)
            await writer.drain()
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def client(port, relay_port, secret):
    old = LineClient(port, "old")
    relayed = LineClient(relay_port, "relayed")
    for round_number in range(ROUNDS):
        word = f"{secret}{round_number}"
        answer = old.ask(f"run {word}")
        if answer != f"ran {word}":
            fail_client(f"run {word} answered {answer!r}")
        for i in range(NEW_CLIENTS):
            new = LineClient(port, f"new client {i} after run {round_number}")
            new.echo(f"new {i} {secret}")
            new.socket.close()
        old.echo(f"old {round_number} {secret}")
        relayed.echo(f"relayed {round_number} {secret}")
    print("ok")


def test():
    with Mesh("asyncio-subprocess") as mesh:
        mesh.start_agent()
        port = free_port()
        server = start_meshed_server(
            mesh, "asyncio-server", [PYTHON, os.path.abspath(__file__), "server", str(port)], port)
        relay = Relay(port)
        secret = random_token(16)
        status, output, errors = run_meshed(
            mesh, "client",
            [PYTHON, os.path.abspath(__file__), "client", str(port), str(relay.port), secret], 60)
        check(status == 0 and output.strip() == "ok",
              f"the client failed ({status}):\n{output}{errors}\nserver:\n{server.stderr()[-3000:]}")
        assert_relay_tls13(relay, [secret.encode()], expected_connections=1)

        assert_plaintext_refused(port, server, b"run in clear\n")
        check(server.popen.poll() is None, f"the server died:\n{server.stderr()}")
        print(f"{ROUNDS} subprocesses forked (close_range in the child) while old and new meshed "
              "clients were served; TLS 1.3 on the wire; plaintext refused")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    elif len(sys.argv) == 5 and sys.argv[1] == "client":
        client(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        main(test)
