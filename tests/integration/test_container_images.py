"""The images of packaging/docker/Dockerfile, built and run with podman: the agent image and a
workload image (BASE_IMAGE, with python3) built from an offline Debian 12 base through the
Dockerfile's build arguments; an agent container in the host's PID namespace serving its socket
directory as a volume; an unmodified python3 http.server started by the entrypoint in a workload
container; and a second workload container as its client. All on the host's loopback (host
network). Checks the client reads the body over mTLS, the bytes between them (through a
recording relay) are TLS 1.3 only, and a plaintext client is refused by the meshed server.

Then the Kubernetes node, as packaging/kubernetes/agent-daemonset.yaml and the injector set it
up: the DaemonSet's init container (its script as written there) run in the agent image installs
the preloads and workload.conf into a directory standing for the node's /var/lib/meshtls; the
DaemonSet's probe command answers 0 in the agent container; and a container of the plain base
image, with nothing of libmeshtls installed, given only what the injector adds (the two read-only
mounts, LD_PRELOAD, MESHTLS_AGENT_SOCKET, MESHTLS_CONFIG, the probe variables), serves mTLS to a
client made the same way, and plaintext to a probe from the probe source alone."""

import http.client
import os
import tempfile
import time

import yaml

from container_common import (Made, base_image, build_stage, can_run_containers, ignore_file,
                              podman)
from harness import (assert_plaintext_refused, assert_relay_tls13, Relay, check, free_port, main,
                     port_open, random_token, wait_for)

# The agent attests callers through /proc/<pid> of every container's processes: the host's PID
# namespace, and the capabilities of the packaged systemd unit that a container lacks by default
# (another uid's /proc/<pid>/exe and status; an executable its owner made unreadable; mlock).
AGENT_OPTIONS = ["--pid", "host", "--network", "host", "--cap-add",
                 "SYS_PTRACE,DAC_READ_SEARCH,IPC_LOCK"]


class Logs:
    """A container's output as harness.Process offers it (stderr() for assertions)."""

    def __init__(self, name):
        self.name = name

    def stderr(self):
        result = podman("logs", self.name, timeout=30, check_status=False)
        return result.stdout + result.stderr


def start_agent(made, image, sockets, suffix):
    name = made.container(f"meshtls-test-agent-{suffix}")
    podman("run", "-d", "--name", name, *AGENT_OPTIONS, "-v", f"{sockets}:/run/meshtls", image,
           "--socket", "/run/meshtls/agent.sock", "--state-dir", "/var/lib/meshtls-agent",
           "--config", "/etc/meshtls/agent.conf", "--metrics-address", "off")
    agent = Logs(name)
    wait_for(lambda: "serving /run/meshtls/agent.sock" in agent.stderr(), 30,
             "the agent container to serve /run/meshtls/agent.sock")
    return agent


def workload_args(sockets, config):
    return ["--network", "host", "-v", f"{sockets}:/run/meshtls", "-v",
            f"{config}:/etc/meshtls/meshtls.conf:ro"]


DAEMONSET = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "packaging", "kubernetes", "agent-daemonset.yaml")


def daemonset_pod():
    with open(DAEMONSET) as f:
        return yaml.safe_load(f)["spec"]["template"]["spec"]


def run_init_container(agent_image, node_lib, workload_config):
    """The DaemonSet's init container as written, with node_lib as its hostPath /var/lib/meshtls
    and workload_config (a file) as the workload.conf of its ConfigMap."""
    pod = daemonset_pod()
    (init,) = pod["initContainers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = []
    for mount in init["volumeMounts"]:
        volume = volumes[mount["name"]]
        if volume.get("hostPath", {}).get("path") == "/var/lib/meshtls":
            mounts += ["-v", f"{node_lib}:{mount['mountPath']}"]
        elif "configMap" in volume:
            mounts += ["-v", f"{workload_config}:{mount['mountPath']}/workload.conf:ro"]
        else:
            check(False, f"the init container mounts {mount['name']}, unknown to this test")
    command = init["command"] + init.get("args", [])
    return podman("run", "--rm", *mounts, "--entrypoint", command[0], agent_image, *command[1:],
                  timeout=120, check_status=False)


def injected_args(sockets, node_lib, probe_port=None):
    """What meshtls-injector adds to a container (the contract), on the host's network."""
    args = ["--network", "host", "-v", f"{sockets}:/run/meshtls:ro", "-v",
            f"{node_lib}:/var/lib/meshtls:ro",
            "-e", "LD_PRELOAD=/var/lib/meshtls/lib/libmeshtls-preload.so",
            "-e", "MESHTLS_AGENT_SOCKET=/run/meshtls/agent.sock",
            "-e", "MESHTLS_CONFIG=/var/lib/meshtls/workload.conf"]
    if probe_port is not None:
        args += ["-e", "MESHTLS_PROBE_SOURCES=127.0.0.2", "-e", f"MESHTLS_PROBE_PORTS={probe_port}"]
    return args


def probe_from(source, port, path):
    """A plaintext GET from source (the kubelet's probe): (status or None, body)."""
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20,
                                                source_address=(source, 0))
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return None, b""


def check_kubernetes_node(made, agent, base, agent_image, sockets, work, suffix):
    node_lib = os.path.join(work, "var-lib-meshtls")
    os.mkdir(node_lib)
    workload_config = os.path.join(work, "workload.conf")
    with open(workload_config, "w") as f:
        f.write('outbound = { loopback = "mtls"; };\ninbound = { loopback = "strict"; };\n'
                'log_level = "debug";\n')
    os.chmod(workload_config, 0o644)
    result = run_init_container(agent_image, node_lib, workload_config)
    check(result.returncode == 0, f"the DaemonSet's init container failed ({result.returncode}):\n"
                                  f"{result.stdout}{result.stderr}")
    for name in ("lib/libmeshtls-preload.so", "lib/libmeshtls-preload-musl.so", "workload.conf"):
        path = os.path.join(node_lib, name)
        check(os.path.isfile(path) and os.stat(path).st_mode & 0o777 == 0o644,
              f"the init container did not install {name} 0644:\n{result.stdout}")
    check(not [n for n in os.listdir(os.path.join(node_lib, "lib")) if n.endswith(".new")],
          "the init container left a temporary file")

    (container,) = daemonset_pod()["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        result = podman("exec", agent.name, *command, timeout=60, check_status=False)
        check(result.returncode == 0, f"the DaemonSet's {probe} fails in the agent container:\n"
                                      f"{result.stdout}{result.stderr}")

    site = os.path.join(work, "injected-site")
    os.mkdir(site)
    secret = random_token()
    with open(os.path.join(site, "healthz"), "w") as f:
        f.write(f"injected {secret}\n")
    os.chmod(site, 0o755)
    port = free_port()
    server_name = made.container(f"meshtls-test-injected-{suffix}")
    podman("run", "-d", "--name", server_name, *injected_args(sockets, node_lib, port), "-v",
           f"{site}:/site:ro", base, "python3", "-m", "http.server", str(port), "--bind",
           "127.0.0.1", "--directory", "/site")
    server = Logs(server_name)
    wait_for(lambda: port_open(port), 30, "the injected server container to listen")

    relay = Relay(port)
    fetch = ("import urllib.request\n"
             f"print(urllib.request.urlopen('http://127.0.0.1:{relay.port}/healthz', "
             "timeout=20).read().decode().strip())\n")
    client = podman("run", "--rm", "--name", made.container(f"meshtls-test-injected-client-"
                                                            f"{suffix}"),
                    *injected_args(sockets, node_lib), base, "python3", "-c", fetch,
                    timeout=60, check_status=False)
    check(client.returncode == 0 and client.stdout.strip() == f"injected {secret}",
          f"the injected client failed ({client.returncode}): {client.stdout}{client.stderr}")
    assert_relay_tls13(relay, [secret.encode(), b"GET /healthz"], 1)
    print("injected containers of the plain base image (preload from the node directory the "
          "init container filled) talk mTLS, TLS 1.3 records only on the relay")

    status, body = probe_from("127.0.0.2", port, "/healthz")
    check(status == 200 and secret.encode() in body,
          f"a probe from the probe source got {status}:\n{server.stderr()[-2000:]}")
    wait_for(lambda: "probe source on a probe port" in server.stderr(), 10,
             "the injected server's debug line for the probe")
    status, body = probe_from("127.0.0.3", port, "/healthz")
    check(status is None and secret.encode() not in body,
          f"plaintext from another address was served ({status})")
    print("the probe source reaches the injected server in plaintext, another address does not")


def check_injector_image(image):
    """The injector image runs its webhook as the manifest's non-root user: its --help answers,
    and without a certificate it refuses to start, naming the flag."""
    result = podman("run", "--rm", image, "--help", timeout=60, check_status=False)
    check(result.returncode == 0 and "--tls-cert" in result.stdout,
          f"meshtls-injector --help in its image failed ({result.returncode}):\n"
          f"{result.stdout}{result.stderr}")
    result = podman("run", "--rm", "--entrypoint", "id", image, "-u", timeout=60,
                    check_status=False)
    check(result.stdout.strip() == "65532", f"the injector image runs as uid {result.stdout!r}")
    result = podman("run", "--rm", image, timeout=60, check_status=False)
    check(result.returncode != 0 and "--tls-cert" in result.stderr,
          f"the injector started without a certificate ({result.returncode}):\n"
          f"{result.stdout}{result.stderr}")
    print("the injector image: meshtls-injector from the meshtls-agent package, uid 65532")


def test():
    base = base_image()
    can_run_containers(base)
    suffix = f"{os.getpid()}"
    started = time.monotonic()
    with Made() as made, tempfile.TemporaryDirectory(prefix="meshtls-container-") as work:
        os.chmod(work, 0o755)
        ignore = ignore_file(os.path.join(work, "dockerignore"))
        args = {"BUILD_IMAGE": base, "BASE_IMAGE": base, "AGENT_IMAGE": base}
        # The build stage is tagged too, so that removing it at the end removes its layers
        # (podman rmi prunes untagged parents); the two images reuse it from the layer cache.
        build_image = made.image(f"localhost/meshtls-test-build:{suffix}")
        agent_image = made.image(f"localhost/meshtls-test-agent:{suffix}")
        workload_image = made.image(f"localhost/meshtls-test-workload:{suffix}")
        build_seconds = build_stage("build", build_image, args, ignore, timeout=1500)
        agent_seconds = build_stage("agent", agent_image, args, ignore, timeout=600)
        workload_seconds = build_stage("meshtls", workload_image, args, ignore, timeout=600)
        injector_image = made.image(f"localhost/meshtls-test-injector:{suffix}")
        injector_seconds = build_stage("injector", injector_image, args, ignore, timeout=600)
        print(f"image build: build stage (the packages from source) {build_seconds:.0f} s, "
              f"agent {agent_seconds:.0f} s, workload {workload_seconds:.0f} s, "
              f"injector {injector_seconds:.0f} s")
        check_injector_image(injector_image)

        sockets = os.path.join(work, "run-meshtls")
        os.mkdir(sockets)
        agent = start_agent(made, agent_image, sockets, suffix)

        config = os.path.join(work, "meshtls.conf")
        with open(config, "w") as f:
            f.write('outbound = { loopback = "mtls"; };\ninbound = { loopback = "strict"; };\n'
                    'log_level = "info";\n')
        os.chmod(config, 0o644)
        site = os.path.join(work, "site")
        os.mkdir(site)
        secret = random_token()
        with open(os.path.join(site, "index.txt"), "w") as f:
            f.write(f"hello from a container {secret}\n")
        os.chmod(site, 0o755)

        port = free_port()
        server_name = made.container(f"meshtls-test-server-{suffix}")
        podman("run", "-d", "--name", server_name, *workload_args(sockets, config), "-v",
               f"{site}:/site:ro", workload_image, "python3", "-m", "http.server", str(port),
               "--bind", "127.0.0.1", "--directory", "/site")
        server = Logs(server_name)
        wait_for(lambda: port_open(port), 30, "the meshed server container to listen")

        relay = Relay(port)
        probe = ("import urllib.request\n"
                 f"print(urllib.request.urlopen('http://127.0.0.1:{relay.port}/index.txt', "
                 "timeout=20).read().decode().strip())\n")
        client = podman("run", "--rm", "--name", made.container(f"meshtls-test-client-{suffix}"),
                        *workload_args(sockets, config), workload_image, "python3", "-c", probe,
                        timeout=60, check_status=False)
        check(client.returncode == 0 and client.stdout.strip() == f"hello from a container "
              f"{secret}", f"the meshed client failed ({client.returncode}): "
                           f"{client.stdout}{client.stderr}")
        check(f"mtls outbound to 127.0.0.1:{relay.port}" in client.stderr,
              f"the client's connection was not mTLS:\n{client.stderr}")
        wait_for(lambda: "mtls inbound from 127.0.0.1" in server.stderr(), 10,
                 "the server's mtls inbound log line")
        connections = assert_relay_tls13(relay, [secret.encode(), b"GET /index.txt"], 1)
        print(f"client container read the body over mTLS; {connections} connection on the "
              "relay, TLS 1.3 records only")

        assert_plaintext_refused(port, server, b"GET /index.txt HTTP/1.0\r\n\r\n")
        print("a plaintext client is refused by the meshed server container")

        check_kubernetes_node(made, agent, base, agent_image, sockets, work, suffix)
    print(f"container test wall time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main(test)
