"""No Nagle wait behind the bytes libmeshtls sends of its own: checked on the wire.

A client that keeps Nagle on (no TCP_NODELAY: ab, Python's http.client) sent its request only
once the server had acknowledged the client's Finished, a small segment just before it, which the
server's delayed ACK held for 40 ms: 22 requests/s from ab against a meshed nginx. Counted, not
timed: the test runs in a network namespace of its own (unshare --net), captures loopback with an
AF_PACKET socket, and for each connection looks at the client's first application record: under
Nagle it cannot leave before the ACK of the Finished, so it must be on the wire before that ACK
(or in the same segment). The same for the server's first reply after its session ticket, and for
close_notify after a server's last small write. A client's own TCP_NODELAY is what getsockopt
says before, during and after, and 0 set explicitly stays 0.

Pairs: ab -> nginx (HTTP/1.0, no keep-alive), urllib -> Python's http.server, a server that
speaks first (peers.py greeter, SMTP-like) with its Nagle-on client, and a server that writes its
reply as one vector of two pieces (sendmsg), which must leave as one record in one segment, as
plain TCP sends it. curl is left out: it sets TCP_NODELAY itself.

Replies larger than a record on a kept connection (Python servers answering each 1-byte request
with one sendall of 20, 40 and 200 KB, one on a blocking socket, one with a timeout, which Python
runs on a non-blocking one, and one sendmsg of a header and the body): a record per send, the last one of each reply waited for the delayed
ACK of the one before (44 ms per round trip against 0.3 ms plain); the records of one write must
leave together, as plain TCP sends the write.
"""

import os
import shutil
import socket
import struct
import subprocess
import sys
import threading

from harness import (MESHTLS, PYTHON, Mesh, check, free_port, main, nginx_conf, skip,
                     start_meshed_server)

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
IN_NAMESPACE = "MESHTLS_TEST_NAGLE_NETNS"
PACKET_OUTGOING = 4  # sll_pkttype: each loopback packet is seen once as sent, once as received

# A Nagle-on client that reports its TCP_NODELAY as it goes; the second connection sets 0
# explicitly before connecting, the third sets 1 after its first write.
NODELAY_CLIENT = r"""
import socket, sys, urllib.request
port = int(sys.argv[1])
def nodelay(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
for explicit in (None, 0, 1):
    s = socket.socket()
    if explicit == 0:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    s.connect(("127.0.0.1", port))
    seen = [nodelay(s)]
    s.sendall(b"GET /page.html HTTP/1.0\r\n\r\n")
    seen.append(nodelay(s))
    if explicit == 1:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        seen.append(nodelay(s))
    reply = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    print(explicit, seen, reply.split(b"\r\n")[0].decode())
print(urllib.request.urlopen(f"http://127.0.0.1:{port}/page.html", timeout=20).status)
"""

# A server that answers each line with one sendmsg of two pieces (a header and a small body) and
# keeps the connection open, and its client: neither sets TCP_NODELAY. Plain TCP sends the two
# pieces in one segment; no FIN follows that would push out a held second one.
VECTOR_SERVER = r"""
import socket, sys
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    with connection:
        line = connection.makefile("rb").readline()
        connection.sendmsg([b"HEADER " + line, b"a small body\n"])
        connection.recv(1)
"""
VECTOR_CLIENT = r"""
import socket, sys
for _ in range(4):
    with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as connection:
        connection.sendall(b"hello\n")
        reply = b""
        while not reply.endswith(b"a small body\n"):
            chunk = connection.recv(4096)
            if not chunk:
                sys.exit("closed early: %r" % reply)
            reply += chunk
    print(reply.decode().replace("\n", "|"))
"""

# A server that answers each byte it reads with one sendall of the next size, and its client,
# which asks on one kept connection: neither sets TCP_NODELAY. argv: port, "blocking",
# "timeout" (Python then makes the socket non-blocking and waits in poll) or "vector" (blocking,
# each reply one sendmsg of a 64-byte header and the body).
REPLY_SIZES = [20000, 40000, 200000] * 4
BIG_REPLY_SERVER = r"""
import socket, sys
sizes = [int(size) for size in sys.argv[3].split(",")]
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("listening", flush=True)
while True:
    connection, _ = listener.accept()
    if sys.argv[2] == "timeout":
        connection.settimeout(30)
    with connection:
        for size in sizes:
            if not connection.recv(1):
                break
            reply = bytes([size % 251]) * size
            if sys.argv[2] == "vector":  # a header and a body, in one call
                sent = connection.sendmsg([reply[:64], reply[64:]])
                connection.sendall(reply[sent:])
            else:
                connection.sendall(reply)
"""
BIG_REPLY_CLIENT = r"""
import socket, sys
sizes = [int(size) for size in sys.argv[2].split(",")]
with socket.create_connection(("127.0.0.1", int(sys.argv[1]))) as connection:
    for size in sizes:
        connection.sendall(b"?")
        reply = b""
        while len(reply) < size:
            chunk = connection.recv(1 << 20)
            if not chunk:
                sys.exit("closed early")
            reply += chunk
        if reply != bytes([size % 251]) * size:
            sys.exit("reply of %d bytes is wrong" % size)
print("replies", len(sizes))
"""


class Capture:
    """Sent TCP segments on lo, as (src port, dst port, seq, ack, flags, payload)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.segments = []
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                frame, address = self.sock.recvfrom(262144)
            except socket.timeout:
                continue
            if address[2] != PACKET_OUTGOING or len(frame) < 14 + 20:
                continue
            ip = frame[14:]
            if ip[0] >> 4 != 4 or ip[9] != socket.IPPROTO_TCP:
                continue
            header = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[header:total]
            source, destination, seq, ack = struct.unpack("!HHII", tcp[:12])
            offset = (tcp[12] >> 4) * 4
            self.segments.append((source, destination, seq, ack, tcp[13], bytes(tcp[offset:])))

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def connections(segments, server_port):
    """{client port: [(direction, seq, ack, flags, payload)]}, direction "up" from the client."""
    result = {}
    for source, destination, seq, ack, flags, payload in segments:
        if destination == server_port:
            result.setdefault(source, []).append(("up", seq, ack, flags, payload))
        elif source == server_port:
            result.setdefault(destination, []).append(("down", seq, ack, flags, payload))
    return result


def waited_for_ack(packets, direction, index):
    """Whether the data segment packets[index] (sent in direction) left only once the other side
    acknowledged the previous data segment in that direction with a bare ACK, the last thing it
    sent before: the sign of a delayed ACK that Nagle waited for. A segment that follows the
    peer's data or FIN answers it, and an ACK riding on the peer's data is no delayed ACK."""
    previous = max((i for i in range(index) if packets[i][0] == direction and packets[i][4]),
                   default=None)
    answer = max((i for i in range(index) if packets[i][0] != direction), default=None)
    if previous is None or answer is None or answer < previous:
        return False
    _, _, ack, flags, payload = packets[answer]
    end = (packets[previous][1] + len(packets[previous][4])) & 0xFFFFFFFF
    bare_ack = flags & 0x10 and not flags & 0x07 and not payload  # no FIN, SYN, RST or data
    return bool(bare_ack) and (ack - end) & 0xFFFFFFFF < 0x80000000


def check_pair(name, packets_by_connection, client_speaks_first=True, server_writes_once=True):
    """For each connection: the client's first application record did not wait for the ACK of
    its Finished, and no server segment after its handshake flight waited for the ACK of the one
    before (a ticket sent alone would hold the reply; close_notify after a last small write)."""
    checked = 0
    stalls = []
    for port, packets in packets_by_connection.items():
        up = [i for i, p in enumerate(packets) if p[0] == "up" and p[4]]
        down = [i for i, p in enumerate(packets) if p[0] == "down" and p[4]]
        if len(up) < 3 or len(down) < 2:
            continue
        checked += 1
        # The client's flights: ClientHello, then Certificate..Finished; then its first bytes.
        # A server that speaks first acknowledges the Finished with its greeting: not counted.
        if client_speaks_first and waited_for_ack(packets, "up", up[2]):
            stalls.append(f":{port}: the client's first record waited for the ACK of its "
                          f"Finished")
        # down[0] is the server's flight, which the client's Finished acknowledges. A server that
        # writes its reply in two sends (http.server: headers, then body) has the second held by
        # Nagle in plain TCP too: only single-write servers are checked here.
        for index in down[2:] if server_writes_once else []:
            if waited_for_ack(packets, "down", index):
                stalls.append(f":{port}: a server segment of {len(packets[index][4])} bytes "
                              f"waited for the ACK of the one before")
    # Under Nagle, a record that waited is certain; one that did not may still meet a delayed
    # ACK that fired first on a loaded machine: most, not all, must have gone without waiting.
    check(checked > 0, f"{name}: no complete connection captured")
    check(len(stalls) * 2 < checked,
          f"{name}: {len(stalls)} stalls in {checked} connections:\n" + "\n".join(stalls))
    print(f"{name}: {checked} connections, {len(stalls)} segments waited for an ACK")


def check_replies(name, packets_by_connection):
    """Each reply of a kept connection (the server's data between two client writes, after the
    handshake): its last segment did not wait for the ACK of the segment before."""
    replies = 0
    stalls = []
    for port, packets in packets_by_connection.items():
        up = [i for i, p in enumerate(packets) if p[0] == "up" and p[4]]
        # up[0], up[1]: the client's flights; each later one is a request, answered before the next.
        for request, following in zip(up[2:], up[3:] + [len(packets)]):
            reply = [i for i in range(request, following)
                     if packets[i][0] == "down" and packets[i][4]]
            if not reply:
                continue
            replies += 1
            # One segment (a write that left whole) had nothing to wait for. A reply larger than
            # one batch of records (core/conn_io.c, 64 KiB) goes in several sends, the later ones
            # after the client acknowledged full-sized segments, at once (no delayed ACK): the
            # ACK seen before them is no sign of a wait.
            size = sum(len(packets[i][4]) for i in reply)
            if len(reply) > 1 and size <= 65536 and waited_for_ack(packets, "down", reply[-1]):
                stalls.append(f":{port}: the last segment of a {size}-byte reply waited for the "
                              f"ACK of the one before")
    # As in check_pair: most, not all, must have gone without waiting.
    check(replies >= len(REPLY_SIZES) // 2, f"{name}: only {replies} replies captured")
    check(len(stalls) * 2 < replies,
          f"{name}: {len(stalls)} stalls in {replies} replies:\n" + "\n".join(stalls))
    print(f"{name}: {replies} replies, {len(stalls)} waited for an ACK")


def run_in_namespace(mesh, capture):
    www = os.path.join(mesh.dir, "www")
    os.makedirs(www)
    with open(os.path.join(www, "page.html"), "w") as page:
        page.write("<p>a small page</p>\n")

    # ab -> nginx, new connection per request (no -k): both Nagle-on.
    nginx_port = free_port()
    conf = os.path.join(mesh.dir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_conf(mesh.dir, f"127.0.0.1:{nginx_port}", connections=64,
                           http_extra="    access_log off;\n"))
    nginx = start_meshed_server(mesh, "nginx", ["nginx", "-p", mesh.dir, "-c", conf, "-e",
                                                os.path.join(mesh.dir, "nginx-error.log")],
                                nginx_port)
    ab = mesh.meshed("ab", ["ab", "-n", "6", "-c", "1",
                            f"http://127.0.0.1:{nginx_port}/page.html"])
    check(ab.wait(60) == 0, f"ab failed:\n{ab.stdout().decode()[-2000:]}\n{ab.stderr()}")
    check(b"Failed requests:        0" in ab.stdout(), f"ab:\n{ab.stdout().decode()}")

    # A Python client, Nagle on, and urllib, against Python's http.server (Nagle on too).
    http_port = free_port()
    http = start_meshed_server(mesh, "http.server", [PYTHON, "-m", "http.server", "-b",
                                                     "127.0.0.1", "-d", www, str(http_port)],
                               http_port)
    script = os.path.join(mesh.dir, "nodelay_client.py")
    with open(script, "w") as f:
        f.write(NODELAY_CLIENT)
    client = mesh.meshed("nodelay-client", [PYTHON, script, str(http_port)])
    check(client.wait(60) == 0, f"the Python client failed:\n{client.stderr()}")
    lines = client.stdout().decode().splitlines()
    check(lines[:3] == ["None [0, 0] HTTP/1.0 200 OK", "0 [0, 0] HTTP/1.0 200 OK",
                        "1 [0, 0, 1] HTTP/1.0 200 OK"] and lines[3] == "200",
          f"TCP_NODELAY as the client saw it, or its replies: {lines}")

    # A server that speaks first (SMTP-like), and its client: neither sets TCP_NODELAY.
    greet_port = free_port()
    greeter = start_meshed_server(mesh, "greeter", [PYTHON, PEERS, "greeter", str(greet_port)],
                                  greet_port)
    for index in range(4):
        greet = mesh.meshed(f"greet-client-{index}", [PYTHON, PEERS, "greet-client",
                                                      str(greet_port)])
        check(greet.wait(30) == 0 and b"220 greeter" in greet.stdout(),
              f"greet-client failed:\n{greet.stderr()}")
    # A reply written as one vector of two pieces.
    vector_port = free_port()
    vector_script = os.path.join(mesh.dir, "vector_server.py")
    with open(vector_script, "w") as f:
        f.write(VECTOR_SERVER)
    vector = start_meshed_server(mesh, "vector-server", [PYTHON, vector_script, str(vector_port)],
                                 vector_port)
    vector_client_script = os.path.join(mesh.dir, "vector_client.py")
    with open(vector_client_script, "w") as f:
        f.write(VECTOR_CLIENT)
    vector_client = mesh.meshed("vector-client", [PYTHON, vector_client_script, str(vector_port)])
    check(vector_client.wait(60) == 0 and
          vector_client.stdout().count(b"HEADER hello|a small body|") == 4,
          f"vector client:\n{vector_client.stdout()}\n{vector_client.stderr()}")
    # Replies larger than a record, on kept connections.
    sizes = ",".join(str(size) for size in REPLY_SIZES)
    big_script = os.path.join(mesh.dir, "big_reply_server.py")
    with open(big_script, "w") as f:
        f.write(BIG_REPLY_SERVER)
    big_client_script = os.path.join(mesh.dir, "big_reply_client.py")
    with open(big_client_script, "w") as f:
        f.write(BIG_REPLY_CLIENT)
    big_ports = {}
    big_servers = []
    for mode in ("blocking", "timeout", "vector"):
        port = big_ports[mode] = free_port()
        big_servers.append(start_meshed_server(mesh, f"big-reply-server-{mode}",
                                               [PYTHON, big_script, str(port), mode, sizes], port))
        big_client = mesh.meshed(f"big-reply-client-{mode}",
                                 [PYTHON, big_client_script, str(port), sizes])
        check(big_client.wait(120) == 0 and
              big_client.stdout().strip() == f"replies {len(REPLY_SIZES)}".encode(),
              f"big-reply client ({mode}):\n{big_client.stdout()}\n{big_client.stderr()}")
    for server in [nginx, http, greeter, vector] + big_servers:
        server.stop()
    capture.stop()

    check_pair("ab -> nginx", connections(capture.segments, nginx_port))
    check_pair("python -> http.server", connections(capture.segments, http_port),
               server_writes_once=False)
    check_pair("greet-client -> greeter (server first)",
               connections(capture.segments, greet_port), client_speaks_first=False)
    check_pair("sendmsg of two pieces", connections(capture.segments, vector_port))
    for mode, port in big_ports.items():
        check_replies(f"replies of 20-200 KB ({mode})", connections(capture.segments, port))


def test():
    if os.environ.get(IN_NAMESPACE) != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            skip("needs root and unshare(1) for a network namespace")
        for tool in ("ab", "nginx", "ip"):
            if shutil.which(tool) is None:
                skip(f"{tool} not installed (packaging/install-deps.sh)")
        env = dict(os.environ, **{IN_NAMESPACE: "1"})
        result = subprocess.run(["unshare", "--net", PYTHON, os.path.abspath(__file__)],
                                env=env, timeout=300)
        sys.exit(result.returncode)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    capture = Capture()
    try:
        with Mesh("nagle-wire") as mesh:
            mesh.start_agent()
            run_in_namespace(mesh, capture)
    finally:
        capture.stop()


if __name__ == "__main__":
    main(test)
