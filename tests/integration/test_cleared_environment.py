"""A program that clears its environment before its first connection (nginx keeps only TZ) still
follows the configuration it was started with: the library reads it when it loads, not at the
first connect/accept. Before that fix the server fell back to built-in defaults (loopback plain)
and handed the client's raw ClientHello to the application."""

from harness import PYTHON, Mesh, check, free_port, main, wait_for

SERVER = ("import os, socket\n"
          "listener = socket.create_server(('127.0.0.1', {port}))\n"
          "os.environ.clear()\n"
          "print('listening', flush=True)\n"
          "connection, _ = listener.accept()\n"
          "print(repr(connection.recv(16)), flush=True)\n")
CLIENT = ("import socket\n"
          "connection = socket.create_connection(('127.0.0.1', {port}))\n"
          "connection.sendall(b'hello')\n"
          "connection.close()\n")


def test():
    with Mesh("environment") as mesh:
        mesh.start_agent()
        port = free_port()
        server = mesh.meshed("server", [PYTHON, "-c", SERVER.format(port=port)])
        wait_for(lambda: b"listening" in server.stdout(), 20, "the server to listen")
        client = mesh.meshed("client", [PYTHON, "-c", CLIENT.format(port=port)])
        check(client.wait(30) == 0, f"client failed:\n{client.stderr()}")
        server.wait(30)
        received = server.stdout().decode().splitlines()[-1]
        check(received == "b'hello'",
              f"the server read {received} (a ClientHello means it lost its configuration)")
        check("mtls inbound from 127.0.0.1:" in server.stderr(),
              f"no mTLS inbound line:\n{server.stderr()}")
        print("configuration kept after the program cleared its environment")


if __name__ == "__main__":
    main(test)
