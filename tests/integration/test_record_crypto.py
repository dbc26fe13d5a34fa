"""AES-GCM records on VAES/AVX-512 (libmeshtls/tls/record_crypto.c), seen from outside.

Two unmodified Python programs under `meshtls run` exchange 4 MiB each way (the server sends
back what it received, reversed) through a recording relay:

1. both on the VAES path: each process logs (debug) that its first record went through it, the
   bytes arrive intact both ways, and the wire carries only TLS 1.3 records, with no plaintext;
2. the server with MESHTLS_RECORD_CRYPTO=software, wolfSSL's own AES-GCM, against a client on
   the VAES path: the two implementations interoperate (the same bytes arrive both ways), the
   server says which code it runs and never logs a VAES record, the client does.

Skipped where the path cannot exist: a build without libipsec-mb (MESHTLS_TEST_RECORD_CRYPTO,
set by meson), or a CPU without VAES, VPCLMULQDQ and AVX-512 F/DQ/BW/VL.
"""

import os
import sys

from harness import (PYTHON, Mesh, Relay, assert_tls13_wire, base_env, check, free_port, main,
                     run_meshed, skip, start_meshed_server, wait_for)

SIZE = 4 * 1024 * 1024
MARKER = b"record-crypto-plaintext-marker"
FAST_LINE = "AES-GCM records: first record on VAES AVX-512"
SOFTWARE_LINE = "AES-GCM records: wolfSSL's own (MESHTLS_RECORD_CRYPTO=software)"

SERVER = r"""
import socket, sys
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(sys.argv[1])))
listener.listen(1)
connection, _ = listener.accept()
received = bytearray()
while True:
    chunk = connection.recv(1 << 20)
    if not chunk:
        break
    received += chunk
connection.sendall(bytes(reversed(received)))
connection.close()
"""

CLIENT = r"""
import hashlib, os, socket, sys
size, marker = int(sys.argv[2]), sys.argv[3].encode()
data = bytearray(os.urandom(size))
for offset in range(0, size - len(marker), 65536):
    data[offset:offset + len(marker)] = marker
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
connection.sendall(data)
connection.shutdown(socket.SHUT_WR)
answer = bytearray()
while True:
    chunk = connection.recv(1 << 20)
    if not chunk:
        break
    answer += chunk
print("intact" if bytes(answer) == bytes(reversed(data)) else f"corrupt {len(answer)}")
"""

NEEDED_FLAGS = {"vaes", "vpclmulqdq", "avx512f", "avx512dq", "avx512bw", "avx512vl"}


def cpu_has_vaes():
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                return NEEDED_FLAGS <= set(line.split(":", 1)[1].split())
    return False


def exchange(mesh, name, server_env=None):
    """One 4 MiB round trip through a relay; returns (server stderr, client stderr, relay)."""
    server_port = free_port()
    relay = Relay(server_port)
    server = start_meshed_server(mesh, f"{name}-server", [PYTHON, "-c", SERVER, str(server_port)],
                                 server_port, env=server_env)
    status, output, errors = run_meshed(
        mesh, f"{name}-client",
        [PYTHON, "-c", CLIENT, str(relay.port), str(SIZE), MARKER.decode()], 60)
    check(status == 0, f"{name}: client exited {status}:\n{output}\n{errors[-3000:]}")
    check(output.strip() == "intact", f"{name}: the echo did not come back intact: {output}")
    wait_for(lambda: server.popen.poll() is not None, 20, f"{name}: the server to exit")
    relay.stop()
    with relay.lock:
        connections = list(zip(relay.client_bytes, relay.server_bytes))
    check(len(connections) == 1, f"{name}: relay carried {len(connections)} connections")
    assert_tls13_wire(*connections[0], [MARKER])
    return server.stderr(), errors, connections[0]


def test():
    if os.environ.get("MESHTLS_TEST_RECORD_CRYPTO", "none") != "vaes":
        skip("this build has no VAES record path (no libipsec-mb, or -Dwolfssl=system)")
    if not cpu_has_vaes():
        skip("this CPU has no VAES with AVX-512")
    with Mesh("record-crypto", log_level="debug") as mesh:
        mesh.start_agent()

        server_log, client_log, wire = exchange(mesh, "fast")
        check(FAST_LINE in server_log, "the server did not use the VAES path:\n" + server_log)
        check(FAST_LINE in client_log, "the client did not use the VAES path:\n" + client_log)
        check(len(wire[0]) > SIZE and len(wire[1]) > SIZE,
              f"the wire carried {len(wire[0])} and {len(wire[1])} bytes, expected > {SIZE}")

        software = base_env()
        software["MESHTLS_RECORD_CRYPTO"] = "software"
        server_log, client_log, _ = exchange(mesh, "mixed", server_env=software)
        check(SOFTWARE_LINE in server_log,
              "the server did not say it runs wolfSSL's own AES-GCM:\n" + server_log)
        check(FAST_LINE not in server_log,
              "the server used the VAES path despite MESHTLS_RECORD_CRYPTO=software")
        check(FAST_LINE in client_log, "the client did not use the VAES path:\n" + client_log)
        sys.stdout.write("VAES records interoperate with wolfSSL's own, both ways, 4 MiB each\n")


if __name__ == "__main__":
    main(test)
