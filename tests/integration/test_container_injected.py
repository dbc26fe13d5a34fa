"""Pods patched by meshtls-injector run meshed: an annotated server pod (python3 -m http.server)
and a client pod of a namespace the webhook selects (python3 urllib), each sent through the
built webhook as an AdmissionReview, the patch applied, and each patched container run with
podman as a kubelet would run it: its image (the container suite's Debian 12 base, which has
python3), command, user, and environment (the downward API's status.hostIP resolved to the
test's node address), its hostPath volumes bind-mounted from directories the test prepared as the
node's agent DaemonSet would (a real meshtls-agent serving <node>/run/meshtls/agent.sock, the
built preload in <node>/var/lib/meshtls/lib, the node's workload.conf), its ConfigMap volume
from files, on the host's loopback (host network). The client reads the body through a recording
relay: each side logs the other's SPIFFE ID (by uid, from the agent's rules), the relay saw TLS
1.3 records only, and a plaintext client is refused by the meshed server."""

import os
import shutil
import tempfile
import time

from container_common import Made, base_image, can_run_containers, podman
from harness import (AGENT, BUILD, Mesh, Relay, assert_plaintext_refused, assert_relay_tls13,
                     base_env, check, free_port, main, port_open, random_token, wait_agent_ready,
                     wait_for)
from injector_common import (Injector, apply, decoded_patch, load_fixture, make_certificate,
                             validate_pod)

# status.hostIP as the pods see it: a loopback address that is not the one the client connects
# from, so that no connection of the test is taken for a kubelet probe (MESHTLS_PROBE_SOURCES).
NODE_IP = "127.0.0.3"
SERVER_ID = "spiffe://meshtls.local/ns/demo/sa/web"
CLIENT_ID = "spiffe://meshtls.local/ns/demo/sa/fetch"
AGENT_RULES = ('rules = ( { uid = 1001; id = "ns/demo/sa/web"; },\n'
               '          { uid = 1002; id = "ns/demo/sa/fetch"; } );\n')


class Logs:
    """A detached container's output, as harness.Process offers it."""

    def __init__(self, name):
        self.name = name

    def stderr(self):
        result = podman("logs", self.name, timeout=30, check_status=False)
        return result.stdout + result.stderr


def prepare_node(node):
    """The node's directories as the agent DaemonSet's init container leaves them."""
    lib = os.path.join(node, "var", "lib", "meshtls", "lib")
    run = os.path.join(node, "run", "meshtls")
    os.makedirs(lib)
    os.makedirs(run)
    shutil.copy(os.path.join(BUILD, "libmeshtls-preload.so"), lib)
    with open(os.path.join(node, "var", "lib", "meshtls", "workload.conf"), "w") as f:
        f.write('outbound = { loopback = "mtls"; };\ninbound = { loopback = "strict"; };\n'
                'log_level = "info";\n')
    for directory, _, files in os.walk(node):
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    return os.path.join(run, "agent.sock")


def start_agent(mesh, socket_path):
    config = os.path.join(mesh.dir, "agent.conf")
    with open(config, "w") as f:
        f.write(AGENT_RULES)
    process = mesh.spawn("agent", [AGENT, "--socket", socket_path, "--state-dir",
                                   os.path.join(mesh.dir, "agent-state"), "--config", config,
                                   "--metrics-address", "off"], env=base_env())
    wait_agent_ready(process, socket_path)
    return process


def env_value(entry):
    if "value" in entry:
        return entry["value"]
    field = entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(field == "status.hostIP", f"the test cannot resolve env {entry}")
    return NODE_IP


def run_container(made, pod, container, image, node, config_maps, work, name, detach):
    """podman run of one patched container as the kubelet would start it."""
    args = ["run", "--name", made.container(name), "--network", "host"]
    args += ["-d"] if detach else ["--rm"]
    security = {**pod["spec"].get("securityContext", {}), **container.get("securityContext", {})}
    if "runAsUser" in security:
        args += ["--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "hostPath" in volume:
            source = os.path.join(node, volume["hostPath"]["path"].lstrip("/"))
            check(volume["hostPath"].get("type") != "Directory" or os.path.isdir(source),
                  f"hostPath {volume['hostPath']['path']} is not a directory of the node")
        else:
            check("configMap" in volume, f"the test cannot mount volume {volume}")
            source = os.path.join(work, f"configmap-{volume['name']}")
            os.makedirs(source, mode=0o755, exist_ok=True)
            data = config_maps[volume["configMap"]["name"]]
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                with open(os.path.join(source, item["path"]), "w") as f:
                    f.write(data[item["key"]])
                os.chmod(os.path.join(source, item["path"]), 0o644)
        args += ["-v", f"{source}:{mount['mountPath']}" + (":ro" if mount.get("readOnly") else "")]
    for entry in container.get("env", []):
        args += ["--env", f"{entry['name']}={env_value(entry)}"]
    args.append(image)
    args += container.get("command", []) + container.get("args", [])
    return podman(*args, timeout=90, check_status=detach)


def patched_pod(injector, review):
    patch = decoded_patch(injector.review(review))
    check(patch is not None, f"{review['request']['uid']}: not injected")
    pod = apply(review["request"]["object"], patch)
    validate_pod(pod)
    return pod


def test():
    base = base_image()
    can_run_containers(base)
    started = time.monotonic()
    suffix = f"{os.getpid()}"
    with Mesh("injected") as mesh, Made() as made, \
            tempfile.TemporaryDirectory(prefix="meshtls-injected-") as work:
        os.chmod(work, 0o755)
        node = os.path.join(work, "node")
        socket_path = prepare_node(node)
        start_agent(mesh, socket_path)
        cert, key = make_certificate(mesh.dir, "injector")
        # The shipped configuration: the namespace selected, pods injected by default.
        injector = Injector(mesh, "injector", cert, key, inject_default="enabled")

        port = free_port()
        server_review = load_fixture("review-mtls-server.json")
        web = server_review["request"]["object"]["spec"]["containers"][0]
        web["command"][3] = str(port)
        web["ports"][0]["containerPort"] = port
        server = patched_pod(injector, server_review)
        web = server["spec"]["containers"][0]
        check({"name": "MESHTLS_PROBE_PORTS", "value": str(port)} in web["env"],
              f"the readiness probe's named port is not in MESHTLS_PROBE_PORTS: {web['env']}")
        secret = random_token()
        config_maps = {"web-site": {"index.txt": f"hello from an injected pod {secret}\n"}}
        server_name = f"meshtls-test-injected-web-{suffix}"
        run_container(made, server, web, base, node, config_maps, work, server_name, True)
        server_logs = Logs(server_name)
        wait_for(lambda: port_open(port), 30, "the injected server container to listen")

        relay = Relay(port)
        client_review = load_fixture("review-mtls-client.json")
        fetch = client_review["request"]["object"]["spec"]["containers"][0]
        fetch["args"] = [f"http://127.0.0.1:{relay.port}/index.txt"]
        client = patched_pod(injector, client_review)
        result = run_container(made, client, client["spec"]["containers"][0], base, node,
                               config_maps, work, f"meshtls-test-injected-fetch-{suffix}", False)
        check(result.returncode == 0 and
              result.stdout.strip() == f"hello from an injected pod {secret}",
              f"the injected client failed ({result.returncode}): {result.stdout}{result.stderr}")
        check(f"mtls outbound to 127.0.0.1:{relay.port}: peer {SERVER_ID}" in result.stderr,
              f"the client's connection was not mTLS to {SERVER_ID}:\n{result.stderr}")
        wait_for(lambda: f"on :{port}: peer {CLIENT_ID}" in server_logs.stderr(), 10,
                 f"the server's log line naming {CLIENT_ID}")
        connections = assert_relay_tls13(relay, [secret.encode(), b"GET /index.txt"], 1)
        print(f"injected client read the body from the injected server over mTLS "
              f"({CLIENT_ID} -> {SERVER_ID}); {connections} connection on the relay, TLS 1.3 "
              "records only")
        assert_plaintext_refused(port, server_logs, b"GET /index.txt HTTP/1.0\r\n\r\n")
        print("a plaintext client is refused by the injected server")
    print(f"injected pods test wall time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main(test)
