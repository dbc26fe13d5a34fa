"""The images of packaging/docker/Dockerfile, built and run with podman: the agent image and a
workload image (BASE_IMAGE, with python3) built from an offline Debian 12 base through the
Dockerfile's build arguments; an agent container in the host's PID namespace serving its socket
directory as a volume; an unmodified python3 http.server started by the entrypoint in a workload
container; and a second workload container as its client. All on the host's loopback (host
network). Checks the client reads the body over mTLS, the bytes between them (through a
recording relay) are TLS 1.3 only, and a plaintext client is refused by the meshed server."""

import os
import tempfile
import time

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
        print(f"image build: build stage (the packages from source) {build_seconds:.0f} s, "
              f"agent {agent_seconds:.0f} s, workload {workload_seconds:.0f} s")

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
    print(f"container test wall time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main(test)
