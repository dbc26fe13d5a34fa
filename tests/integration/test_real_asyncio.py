"""A Python asyncio echo server (the default epoll event loop, non-blocking sockets) serves one
asyncio client process running 100 concurrent connections over mTLS, both under `meshtls run`:
every connection sends random data of its own size in random-sized writes, half-closes, and reads
back exactly what it sent, while all 100 are open at once; the ten connections carried by a
recording relay show only TLS 1.3 records on the wire.

Modes: `test_real_asyncio.py server PORT` and `test_real_asyncio.py client PORT RELAY_PORT N
SECRET` are the two programs; with no arguments it is the test."""

import asyncio
import hashlib
import os
import random
import sys

from harness import (PYTHON, Mesh, Relay, assert_relay_tls13, check, free_port, main,
                     random_token, run_meshed, start_meshed_server)

CLIENTS = 100
RELAYED = 10


async def echo(reader, writer):
    """Echoes in random-sized reads until EOF (the client's half-close), then closes."""
    try:
        while chunk := await reader.read(random.randint(1, 65536)):
            writer.write(chunk)
            await writer.drain()
    finally:
        writer.close()


async def serve(port):
    server = await asyncio.start_server(echo, "127.0.0.1", port, backlog=256)
    async with server:
        await server.serve_forever()


class Gate:
    """Opens once count connections have arrived."""

    def __init__(self, count):
        self.count = count
        self.event = asyncio.Event()

    async def arrive_and_wait(self, timeout):
        self.count -= 1
        if self.count == 0:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), timeout)


async def one_client(index, port, size, secret, all_open):
    data = secret + os.urandom(size)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Hold every connection open until all of them are: they are concurrent, not sequential.
    await all_open.arrive_and_wait(30)

    async def send():
        offset = 0
        while offset < len(data):
            step = random.randint(1, 128 * 1024)
            writer.write(data[offset:offset + step])
            await writer.drain()
            offset += step
        writer.write_eof()

    async def receive():
        received = bytearray()
        while chunk := await reader.read(random.randint(1, 65536)):
            received.extend(chunk)
        return bytes(received)

    _, echoed = await asyncio.gather(send(), receive())
    writer.close()
    if echoed != data:
        raise RuntimeError(f"client {index}: sent {len(data)} bytes "
                           f"(sha256 {hashlib.sha256(data).hexdigest()[:16]}), got "
                           f"{len(echoed)} (sha256 {hashlib.sha256(echoed).hexdigest()[:16]})")
    return len(data)


async def run_clients(port, relay_port, count, secret):
    gate = Gate(count)
    sizes = [int(2 ** random.uniform(0, 21)) for _ in range(count)]  # 1 B .. 2 MiB, mostly small
    tasks = [one_client(i, relay_port if i < RELAYED else port, sizes[i], secret, gate)
             for i in range(count)]
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 50)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for failure in failures[:10]:
            sys.stderr.write(f"{type(failure).__name__}: {failure}\n")
        sys.exit(f"{len(failures)} of {count} clients failed")
    print(f"ok clients={count} bytes={sum(results)} largest={max(results)}")


def test():
    with Mesh("asyncio") as mesh:
        mesh.start_agent()
        port = free_port()
        me = os.path.abspath(__file__)
        start_meshed_server(mesh, "server", [PYTHON, me, "server", str(port)], port)
        relay = Relay(port)
        secret = random_token()
        status, output, errors = run_meshed(
            mesh, "clients", [PYTHON, me, "client", str(port), str(relay.port), str(CLIENTS),
                              secret], 60)
        check(status == 0 and output.startswith(f"ok clients={CLIENTS} "),
              f"asyncio clients failed ({status}): {output}\n{errors[-4000:]}")
        carried = assert_relay_tls13(relay, [secret.encode()], expected_connections=RELAYED)
        print(f"asyncio echo: {output.strip()} all equal, {carried} relayed connections "
              f"TLS 1.3 on the wire")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    elif len(sys.argv) > 1 and sys.argv[1] == "client":
        asyncio.run(run_clients(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                sys.argv[5].encode()))
    else:
        main(test)
