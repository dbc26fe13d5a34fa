"""The Kubernetes API server as the mesh membership's source: the agent lists and watches pods and
Services (a stand-in API server over HTTPS, kube_api.py) and workloads whose outbound mode is
"auto" send mTLS to what it says is meshed, plaintext to the rest.

Loopback addresses play the cluster's: pod IPs 127.0.0.11 (web, injected), .12 (plain, not
injected), .13 (late, injected mid-run), .14 (impostor: injected, another service account), and
a Service's ClusterIP 127.0.0.20 selecting app=web. Each is a recording relay to a server on
127.0.0.1: meshed (permissive inbound, identity ns/shop/sa/web) for all but .12. One client
process (python3 under `meshtls run`, outbound.loopback = "auto") fetches through them, one new
connection per fetch, and the test reads the wire:

  - web and the Service are TLS, plain is plaintext, late is plaintext until a MODIFIED event
    marks its pod injected, then TLS on the next connection, and plaintext again once DELETED;
  - a not injected pod joins the Service's selector: the Service is plaintext; it leaves: TLS;
  - impostor's pod names another service account: the connection is refused, nothing in clear;
  - a BOOKMARK moves the watch's resourceVersion: the next watch resumes from it;
  - the token file is read at every request: a refused token is an error that keeps the set,
    the good one written back is used at the next request;
  - the stand-in compacts (the watch gets an ERROR event with Status 410; then an HTTP 410):
    the agent lists again, resumes watching from the new list's resourceVersion, and a pod
    missing from the relist (web) is removed: plaintext;
  - the API server goes away: the set stays (late2, meshed, still TLS), the errors are counted;
  - the metrics count relists, restarts, errors and members.

Then an agent whose API server is slow to list (1.5 s) has an incomplete set when a client asks
for a meshed pod: the client waits for the complete set and reaches the pod over mTLS (a strict
server), never in clear.

Then another agent lists 10 000 dual-stack pods and 500 Services from a fresh stand-in: all of
them are members (20 500 entries, within MT_MEMBERSHIP_ENTRIES_MAX with room for the
tombstones), a change is published, and its peak RSS is printed.
"""

import os
import re
import signal
import time

import kube_api
from harness import (AGENT, ASAN_RUNTIME, PYTHON, Mesh, Relay, base_env, check, free_port, main,
                     random_token, wait_agent_ready, wait_for)
from kube_api import ApiServer, pod, service
from lifecycle_common import parse_metrics, promtool_check, scrape
from policy_common import start_server, write_workload_config
from test_membership_auto import Client, is_tls

TRUST_DOMAIN = "meshtls.local"

def agent_env():
    env = base_env()
    if ASAN_RUNTIME:
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    return env


def start_agent(mesh, name, api, rules=""):
    sock = os.path.join(mesh.dir, f"{name}.sock")
    config = os.path.join(mesh.dir, f"{name}-agent.conf")
    with open(config, "w") as f:
        # The API server from the file here, from the flags below for the second agent.
        f.write(rules + f'api_server = {{ url = "{api.url}"; token_file = "{api.token_file}"; '
                f'ca_file = "{api.ca}"; }};\n')
    metrics_port = free_port()
    process = mesh.spawn(name, [AGENT, "--socket", sock, "--state-dir",
                                os.path.join(mesh.dir, f"{name}-state"), "--log-level", "debug",
                                "--metrics-address", f"127.0.0.1:{metrics_port}",
                                "--config", config], env=agent_env())
    wait_agent_ready(process, sock, name)
    mesh.agents[name] = sock
    return process, metrics_port


GENERATION = re.compile(r"membership generation (\d+): (\d+) entries from the Kubernetes API "
                        r"server(?P<partial> \(not all listed yet\))?")


class Published:
    """The agent's published generations, from its debug lines."""

    def __init__(self, agent):
        self.agent = agent
        self.seen = 0

    def all(self, after=None):
        text = self.agent.stderr()
        if after is not None:
            text = text[text.rfind(after):] if after in text else ""
        return [(int(m.group(1)), int(m.group(2)), m.group("partial") is None)
                for m in GENERATION.finditer(text)]

    def wait(self, entries, what, after=None):
        """Waits for a generation newer than the last one waited for, with entries entries (and
        logged after the last line holding after)."""
        def published():
            newer = [g for g in self.all(after) if g[0] > self.seen and g[1] == entries and g[2]]
            if newer:
                self.seen = newer[-1][0]
            return bool(newer)
        wait_for(published, 20, f"the agent to publish {entries} entries ({what}); it "
                 f"published {self.all()[-5:]}:\n{self.agent.stderr()[-3000:]}")


def run_cluster(mesh):
    api = ApiServer(mesh.dir)
    uid = os.getuid()
    meshed_port, plain_port = free_port(), free_port()
    relays = {
        "web": Relay(meshed_port, host="127.0.0.11"),
        "plain": Relay(plain_port, host="127.0.0.12"),
        "late": Relay(meshed_port, host="127.0.0.13"),
        "impostor": Relay(meshed_port, host="127.0.0.14"),
        "service": Relay(meshed_port, host="127.0.0.20"),
        "late2": Relay(meshed_port, host="127.0.0.15"),
    }
    web = pod("shop", "web-1", "127.0.0.11", "web", labels={"app": "web"})
    api.put("pods", web)
    api.put("pods", pod("shop", "plain-1", "127.0.0.12", "plain", injected=False))
    api.put("pods", pod("shop", "late-1", "127.0.0.13", "web", injected=False))
    api.put("pods", pod("shop", "impostor-1", "127.0.0.14", "other"))
    api.put("pods", pod("shop", "done-1", "127.0.0.16", "web", phase="Succeeded"))
    api.put("pods", pod("kube-system", "node-1", "127.0.0.17", "node", host_network=True))
    api.put("services", service("shop", "web", "127.0.0.20", [relays["service"].port],
                                {"app": "web"}))
    agent, metrics_port = start_agent(mesh, "agent", api,
                                      f'rules = ( {{ uid = {uid}; id = "ns/shop/sa/web"; }} );\n')
    published = Published(agent)

    secrets = {}
    for name, port, meshed in (("meshed", meshed_port, True), ("plain", plain_port, False)):
        root = os.path.join(mesh.dir, f"www-{name}")
        os.mkdir(root)
        secrets[name] = f"{name}-{random_token()}"
        with open(os.path.join(root, "data.txt"), "w") as f:
            f.write(secrets[name] + "\n")
        server_config = write_workload_config(mesh, f"server-{name}", """
outbound = { loopback = "plain"; };
inbound = { loopback = "permissive"; };
""")
        start_server(mesh, f"server-{name}", [PYTHON, "-m", "http.server", str(port), "--bind",
                                              "127.0.0.1", "--directory", root], [port],
                     config=server_config, meshed=meshed)
    # web, impostor: one entry each (every port); the Service: one (its port).
    published.wait(3, "the first lists")
    lists = api.requests_of("pods", "list")
    check(len(lists) >= 3 and lists[1].get("continue") == "2",
          f"the agent did not read the pod list page by page: {lists}")
    watches = api.requests_of("pods", "watch")
    check(watches and watches[0].get("allowWatchBookmarks") == "true" and
          watches[0].get("resourceVersion"), f"the watch is not as expected: {watches}")

    client_config = write_workload_config(mesh, "client", """
outbound = { loopback = "auto"; };
inbound = { loopback = "plain"; };
""")
    client = Client(mesh, "client", client_config)
    meshed, plain = secrets["meshed"], secrets["plain"]
    client.expect(relays["web"], True, meshed, "the injected pod web")
    client.expect(relays["plain"], False, plain, "the pod not injected")
    client.expect(relays["late"], False, meshed, "late before it is injected")
    client.expect(relays["service"], True, meshed, "the Service whose pods are all injected")

    # Another service account than the server's: refused, never sent in clear.
    line, up, _ = client.fetch(relays["impostor"])
    check(" failed " in line, f"a pod of another service account was used: {line}")
    check(not up.startswith(b"GET"), "plaintext went out to a meshed destination")
    check(f"spiffe://{TRUST_DOMAIN}/ns/shop/sa/other expected by the mesh membership" in
          client.process.stderr(), f"no refusal naming the identity:\n"
          f"{client.process.stderr()[-3000:]}")

    api.put("pods", pod("shop", "late-1", "127.0.0.13", "web"))
    published.wait(4, "late injected")
    client.expect(relays["late"], True, meshed, "late once injected (MODIFIED)")
    api.delete("pods", "shop", "late-1")
    published.wait(3, "late deleted")
    client.expect(relays["late"], False, meshed, "late once DELETED")

    # A pod of the Service that is not injected: the Service's strict inbound would not be there.
    api.put("pods", pod("shop", "web-2", "127.0.0.18", "web", injected=False,
                        labels={"app": "web"}))
    published.wait(2, "the Service no longer all meshed")
    client.expect(relays["service"], False, meshed, "the Service with a pod not injected")
    api.delete("pods", "shop", "web-2")
    published.wait(3, "the Service all meshed again")
    client.expect(relays["service"], True, meshed, "the Service all meshed again")

    # A bookmark moves the watch on: the next watch resumes from it.
    bookmark = api.bookmark("pods")
    before = len(api.requests_of("pods", "watch"))
    time.sleep(0.5)
    api.close_watches()
    wait_for(lambda: len(api.requests_of("pods", "watch")) > before, 20, "the watch to resume")
    resumed = api.requests_of("pods", "watch")[before]
    check(resumed.get("resourceVersion") == str(bookmark),
          f"the watch resumed from {resumed.get('resourceVersion')}, not the bookmark {bookmark}")

    # The token is read for every request: a rotated token that the server refuses is an error
    # (the set stays), and the next good one is used at the next request.
    with open(api.token_file, "w") as f:
        f.write("a-token-the-server-refuses\n")
    before = len(api.requests_of("pods", "watch"))
    api.close_watches()
    wait_for(lambda: "HTTP 401 (the API server does not accept the token)" in agent.stderr(), 20,
             "the agent to report the refused token")
    client.expect(relays["web"], True, meshed, "web with the token refused")
    with open(api.token_file, "w") as f:
        f.write(kube_api.TOKEN + "\n")
    wait_for(lambda: len(api.requests_of("pods", "watch")) > before, 30,
             "the watch to resume with the good token")

    # 410 Gone as an ERROR event: a relist, which no longer has web (deleted while unwatched).
    for round_number, as_http in ((1, False), (2, True)):
        lists_before = len(api.requests_of("pods", "list"))
        api.gone_as_http = as_http
        api.compact()
        if round_number == 1:
            api.delete("pods", "shop", "web-1", quietly=True)
            api.put("pods", pod("shop", "late2-1", "127.0.0.15", "web", labels={"app": "web"}),
                    quietly=True)
        wait_for(lambda: len(api.requests_of("pods", "list")) > lists_before, 20,
                 f"the agent to list pods again after 410 round {round_number}")
        wait_for(lambda: agent.stderr().count("relisted pods:") == round_number, 20,
                 "the relist's info line")
        lists = api.requests_of("pods", "list")
        wait_for(lambda: any(int(w.get("resourceVersion", "0")) >= api.compacted
                             for w in api.requests_of("pods", "watch")), 20,
                 "a watch from the new list's resourceVersion")
        if round_number == 1:
            # impostor, late2 and the Service (all of its one pod, late2, injected); web removed.
            published.wait(3, "the relist", after="relisted pods:")
            client.expect(relays["web"], False, meshed, "web, missing from the relist")
            client.expect(relays["late2"], True, meshed, "late2, new in the relist")
    check(len(lists) > lists_before, "no relist")

    # The API server goes away: the last set stays published.
    api.stop()
    wait_for(lambda: "Kubernetes API server:" in agent.stderr() and
             "keeping the last membership" in agent.stderr(), 20, "the agent to see it gone")
    client.expect(relays["late2"], True, meshed, "late2 with the API server gone")
    client.expect(relays["service"], True, meshed, "the Service with the API server gone")

    text = scrape(metrics_port)
    linted = promtool_check(text)
    # As in test_k8s_pods: promtool's one lint on the workloads' families is a known name.
    check(linted is None or linted[0] == 0 or
          (linted[0] == 3 and all(line.startswith("identity_cert_refresh_count ")
                                  for line in linted[1].splitlines() if line.strip())),
          f"promtool check metrics: {linted}")
    samples = parse_metrics(text)

    def value(name):
        return sum(v for (n, _), v in samples.items() if n == name)
    check(value("meshtls_agent_kube_relists_total") >= 2, f"relists: {samples}")
    check(value("meshtls_agent_kube_watch_restarts_total") >= 1, "no watch restart counted")
    check(value("meshtls_agent_kube_api_errors_total") >= 1, "no API error counted")
    check(value("meshtls_agent_kube_members") == 3, "members gauge")
    for relay in relays.values():
        relay.stop()
    agent.signal_group(signal.SIGTERM)
    check(agent.wait(10) == 0, f"the agent did not exit cleanly:\n{agent.stderr()[-2000:]}")


def run_slow_start(mesh):
    """An agent whose API server is slow to list publishes an incomplete set first: a workload's
    first connection to a meshed pod waits for the complete set (agent_wait_ms) and goes mTLS,
    never plaintext to a meshed destination the set did not list yet."""
    api = ApiServer(mesh.dir)
    api.list_delay = 1.5
    port = free_port()
    relay = Relay(port, host="127.0.0.11")
    api.put("pods", pod("shop", "web-1", "127.0.0.11", "web"))
    agent, _ = start_agent(mesh, "agent", api,
                           f'rules = ( {{ uid = {os.getuid()}; id = "ns/shop/sa/web"; }} );\n')
    root = os.path.join(mesh.dir, "www-slow")
    os.mkdir(root)
    secret = f"slow-{random_token()}"
    with open(os.path.join(root, "data.txt"), "w") as f:
        f.write(secret + "\n")
    server_config = write_workload_config(mesh, "server-slow", """
outbound = { loopback = "plain"; };
inbound = { loopback = "strict"; };
""")
    start_server(mesh, "server-slow", [PYTHON, "-m", "http.server", str(port), "--bind",
                                       "127.0.0.1", "--directory", root], [port],
                 config=server_config, meshed=True)
    check(not Published(agent).all() or not Published(agent).all()[-1][2],
          "the agent had a complete set before its API server answered")
    client_config = write_workload_config(mesh, "client-slow", """
outbound = { loopback = "auto"; };
inbound = { loopback = "plain"; };
""")
    client = Client(mesh, "client-slow", client_config)
    client.expect(relay, True, secret, "a meshed pod asked for before the first list ended")
    relay.stop()
    agent.signal_group(signal.SIGTERM)
    check(agent.wait(10) == 0, f"the agent did not exit cleanly:\n{agent.stderr()[-2000:]}")
    api.stop()


def run_large(mesh):
    kube_api.PAGE = 500  # as many as the agent asks for: 20 pages
    api = ApiServer(mesh.dir)
    for n in range(10000):
        ip = f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        api.put("pods", pod(f"ns-{n % 50}", f"pod-{n}", ip, f"sa-{n % 7}",
                            labels={"app": f"app-{n % 500}", "tier": "web"},
                            ip6=f"fd00:10::{n:x}"), quietly=True)
    for n in range(500):
        api.put("services", service(f"ns-{n % 50}", f"svc-{n}", f"10.96.{n >> 8}.{n & 255}",
                                    [80], {"app": f"app-{n}"}), quietly=True)
    process = mesh.spawn("agent-large", [AGENT, "--socket", os.path.join(mesh.dir, "large.sock"),
                                         "--state-dir", os.path.join(mesh.dir, "large-state"),
                                         "--log-level", "debug", "--metrics-address", "off",
                                         *api.flags()], env=agent_env())
    published = Published(process)
    started = time.monotonic()
    # Dual-stack: two entries per pod; a Service's one ClusterIP on one port.
    published.wait(20500, "10 000 pods and 500 Services")
    took = time.monotonic() - started
    # One pod no longer injected: it and the Service selecting it leave, one generation.
    started = time.monotonic()
    api.put("pods", pod("ns-0", "pod-0", "10.0.0.0", "sa-0", injected=False,
                        labels={"app": "app-0", "tier": "web"}, ip6="fd00:10::0"))
    published.wait(20497, "one pod less")
    changed = time.monotonic() - started
    with open(f"/proc/{process.popen.pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    loop = re.findall(r"\(published in (\d+) ms\)", process.stderr())
    print(f"10 000 dual-stack pods, 500 Services: 20 500 entries published in {took:.1f} s, a "
          f"change in {changed:.2f} s (the event loop's part of each generation, ms: {loop}); "
          f"agent VmHWM {status['VmHWM'].strip()}, VmRSS {status['VmRSS'].strip()}", flush=True)
    process.signal_group(signal.SIGTERM)
    check(process.wait(20) == 0, f"the agent did not exit cleanly:\n{process.stderr()[-2000:]}")
    api.stop()


def test():
    with Mesh("k8s-membership") as mesh:
        run_cluster(mesh)
    with Mesh("k8s-membership-slow") as mesh:
        run_slow_start(mesh)
    with Mesh("k8s-membership-large") as mesh:
        run_large(mesh)


if __name__ == "__main__":
    main(test)
